//! Avro for seatflow's processor: a projecting decoder and an encoder.
//!
//! apache-avro parses the writer schema; each record body is then read by a plan compiled
//! once from it, and only the fields a projection names become Python objects (the others are
//! skipped over). The processor needs 13 of a Debezium envelope's 40-odd fields: building
//! objects for all of them (fastavro), or resolving the schema for every record
//! (apache_avro::from_avro_datum), was most of its time.
//!
//! The encoder writes records from a plan compiled the same way, header included; logical
//! values (decimals, timestamps) are converted by fastavro's own converters, which
//! pipelines.avro.RecordWriter hands over, and anything it does not take is left to fastavro.
//! WireDecoder reads the Confluent wire format's header and picks the reader of its schema id.
//!
//! plan.rs compiles a schema into a decode plan, decoder.rs reads bodies by it, encoder.rs
//! writes them, wire.rs reads the wire format's header.

mod decoder;
mod encoder;
mod plan;
mod wire;

use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;

use crate::decoder::ProjectingDecoder;
use crate::encoder::RecordEncoder;
use crate::wire::{UnknownSchemaError, WireDecoder};

pub(crate) fn err(message: String) -> PyErr {
    PyValueError::new_err(message)
}

#[pymodule]
fn seatflow_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ProjectingDecoder>()?;
    m.add_class::<RecordEncoder>()?;
    m.add_class::<WireDecoder>()?;
    m.add(
        "UnknownSchemaError",
        m.py().get_type::<UnknownSchemaError>(),
    )?;
    Ok(())
}
