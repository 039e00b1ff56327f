//! WireDecoder: the Confluent wire format's header, and the reader of each schema id.

use std::collections::HashMap;
use std::sync::Mutex;

use pyo3::create_exception;
use pyo3::exceptions::PyLookupError;
use pyo3::prelude::*;
use pyo3::types::PyBytes;

use crate::decoder::ProjectingDecoder;

create_exception!(
    seatflow_native,
    UnknownSchemaError,
    PyLookupError,
    "Not a wire-format record of a schema id the WireDecoder was given a reader for."
);

/// How a WireDecoder reads the bodies of one schema id.
pub(crate) enum Body {
    Native(Py<ProjectingDecoder>),
    Python(Py<PyAny>), // a callable of the body bytes (fastavro, for what the native one does not take)
}

/// Reads Confluent wire-format records (magic byte 0, 4-byte big-endian schema id, body) with a
/// reader per schema id. UnknownSchemaError for bytes without the header, or of an id it has no
/// reader for: the caller looks the schema up, adds a reader, and asks again.
#[pyclass(frozen)]
pub(crate) struct WireDecoder {
    readers: Mutex<HashMap<u32, Body>>,
}

#[pymethods]
impl WireDecoder {
    #[new]
    fn new() -> Self {
        Self {
            readers: Mutex::new(HashMap::new()),
        }
    }

    /// reader: a ProjectingDecoder, or any callable of a record body.
    fn add(&self, schema_id: u32, reader: &Bound<'_, PyAny>) {
        let body = match reader.cast::<ProjectingDecoder>() {
            Ok(native) => Body::Native(native.clone().unbind()),
            Err(_) => Body::Python(reader.clone().unbind()),
        };
        self.lock().insert(schema_id, body);
    }

    fn decode<'py>(&self, py: Python<'py>, data: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        if data.len() < 5 || data[0] != 0 {
            return Err(UnknownSchemaError::new_err("not wire format"));
        }
        let schema_id = u32::from_be_bytes([data[1], data[2], data[3], data[4]]);
        // The lock is let go before any Python runs (a Python reader may release the GIL).
        let reader = match self.lock().get(&schema_id) {
            Some(Body::Native(d)) => Body::Native(d.clone_ref(py)),
            Some(Body::Python(f)) => Body::Python(f.clone_ref(py)),
            None => return Err(UnknownSchemaError::new_err(schema_id)),
        };
        match reader {
            Body::Native(d) => d.get().decode_body(py, &data[5..]),
            Body::Python(f) => f.bind(py).call1((PyBytes::new(py, &data[5..]),)),
        }
    }
}

impl WireDecoder {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u32, Body>> {
        self.readers
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
