//! RecordEncoder: Python values of one schema into Avro bodies after a fixed header.

use std::collections::HashMap;

use apache_avro::schema::{Name, ResolvedSchema, Schema};
use pyo3::prelude::*;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString};

use crate::err;

/// How to write a Python value of one Avro type. Logical types are written as their underlying
/// type: the caller hands over values already converted (pipelines.avro.RecordWriter does,
/// with fastavro's own converters).
pub(crate) enum Enc {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed(usize),
    Enum(HashMap<String, i64>),
    Array(Box<Enc>),
    Map(Box<Enc>),
    Nullable {
        null_index: i64,
        value: Box<Enc>,
    },
    /// Fields in order, each with the converter of its logical value (top level only).
    Record(Vec<(Py<PyString>, Enc, Option<Py<PyAny>>)>),
}

pub(crate) fn compile_encoder(
    py: Python<'_>,
    schema: &Schema,
    names: &HashMap<Name, &Schema>,
    depth: usize,
) -> PyResult<Enc> {
    if depth > 64 {
        return Err(err("recursive schemas are not supported".into()));
    }
    Ok(match schema {
        Schema::Null => Enc::Null,
        Schema::Boolean => Enc::Boolean,
        Schema::Int | Schema::Date | Schema::TimeMillis => Enc::Int,
        Schema::Long
        | Schema::TimeMicros
        | Schema::TimestampMillis
        | Schema::TimestampMicros
        | Schema::TimestampNanos
        | Schema::LocalTimestampMillis
        | Schema::LocalTimestampMicros
        | Schema::LocalTimestampNanos => Enc::Long,
        Schema::Float => Enc::Float,
        Schema::Double => Enc::Double,
        Schema::Bytes => Enc::Bytes,
        Schema::String | Schema::Uuid => Enc::String,
        Schema::Fixed(fixed) => Enc::Fixed(fixed.size),
        Schema::Decimal(d) => match d.inner.as_ref() {
            Schema::Fixed(f) => Enc::Fixed(f.size),
            _ => Enc::Bytes,
        },
        Schema::Enum(e) => Enc::Enum(
            e.symbols
                .iter()
                .enumerate()
                .map(|(i, s)| (s.clone(), i as i64))
                .collect(),
        ),
        Schema::Array(a) => Enc::Array(Box::new(compile_encoder(py, &a.items, names, depth + 1)?)),
        Schema::Map(m) => Enc::Map(Box::new(compile_encoder(py, &m.types, names, depth + 1)?)),
        Schema::Union(u) => {
            let variants = u.variants();
            let null_index = variants.iter().position(|v| matches!(v, Schema::Null));
            match (variants.len(), null_index) {
                (2, Some(null_index)) => Enc::Nullable {
                    null_index: null_index as i64,
                    value: Box::new(compile_encoder(
                        py,
                        &variants[1 - null_index],
                        names,
                        depth + 1,
                    )?),
                },
                _ => {
                    return Err(err(format!(
                        "unsupported union {variants:?}: only [null, T]"
                    )))
                }
            }
        }
        Schema::Record(r) => Enc::Record(
            r.fields
                .iter()
                .map(|f| {
                    Ok((
                        PyString::intern(py, &f.name).unbind(),
                        compile_encoder(py, &f.schema, names, depth + 1)?,
                        None,
                    ))
                })
                .collect::<PyResult<_>>()?,
        ),
        Schema::Ref { name } => {
            let named = names
                .get(name)
                .ok_or_else(|| err(format!("unknown schema name {name}")))?;
            compile_encoder(py, named, names, depth + 1)?
        }
        other => return Err(err(format!("unsupported type: {other:?}"))),
    })
}

pub(crate) fn write_long(out: &mut Vec<u8>, value: i64) {
    let mut n = ((value << 1) ^ (value >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

pub(crate) fn wrong(what: &str, value: &Bound<'_, PyAny>) -> PyErr {
    let kind = value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    err(format!("{what} expected, got {kind}"))
}

pub(crate) fn encode_value(enc: &Enc, value: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
    match enc {
        Enc::Null => {
            if !value.is_none() {
                return Err(wrong("None", value));
            }
        }
        Enc::Boolean => {
            let b = value.cast::<PyBool>().map_err(|_| wrong("bool", value))?;
            out.push(u8::from(b.is_true()));
        }
        Enc::Int | Enc::Long => {
            if value.is_instance_of::<PyBool>() || !value.is_instance_of::<PyInt>() {
                return Err(wrong("int", value));
            }
            let n: i64 = value.extract()?;
            if matches!(enc, Enc::Int) && i32::try_from(n).is_err() {
                return Err(err(format!("{n} out of range of an Avro int")));
            }
            write_long(out, n);
        }
        Enc::Float => {
            let f = value.cast::<PyFloat>().map_err(|_| wrong("float", value))?;
            let single = f.value() as f32;
            if single.is_infinite() && f.value().is_finite() {
                return Err(err(format!("{} out of range of an Avro float", f.value())));
            }
            out.extend_from_slice(&single.to_le_bytes());
        }
        Enc::Double => {
            let f = value.cast::<PyFloat>().map_err(|_| wrong("float", value))?;
            out.extend_from_slice(&f.value().to_le_bytes());
        }
        Enc::Bytes => {
            let b = value.cast::<PyBytes>().map_err(|_| wrong("bytes", value))?;
            write_long(out, b.as_bytes().len() as i64);
            out.extend_from_slice(b.as_bytes());
        }
        Enc::String => {
            let s = value.cast::<PyString>().map_err(|_| wrong("str", value))?;
            let text = s.to_str()?;
            write_long(out, text.len() as i64);
            out.extend_from_slice(text.as_bytes());
        }
        Enc::Fixed(size) => {
            let b = value.cast::<PyBytes>().map_err(|_| wrong("bytes", value))?;
            if b.as_bytes().len() != *size {
                return Err(err(format!(
                    "{size} bytes expected, got {}",
                    b.as_bytes().len()
                )));
            }
            out.extend_from_slice(b.as_bytes());
        }
        Enc::Enum(symbols) => {
            let s = value.cast::<PyString>().map_err(|_| wrong("str", value))?;
            let index = symbols
                .get(s.to_str()?)
                .ok_or_else(|| err(format!("{s} is not a symbol of the enum")))?;
            write_long(out, *index);
        }
        Enc::Array(items) => {
            let list = value.cast::<PyList>().map_err(|_| wrong("list", value))?;
            if !list.is_empty() {
                write_long(out, list.len() as i64);
                for item in list.iter() {
                    encode_value(items, &item, out)?;
                }
            }
            write_long(out, 0);
        }
        Enc::Map(values) => {
            let dict = value.cast::<PyDict>().map_err(|_| wrong("dict", value))?;
            if !dict.is_empty() {
                write_long(out, dict.len() as i64);
                for (key, item) in dict.iter() {
                    encode_value(&Enc::String, &key, out)?;
                    encode_value(values, &item, out)?;
                }
            }
            write_long(out, 0);
        }
        Enc::Nullable {
            null_index,
            value: inner,
        } => {
            if value.is_none() {
                write_long(out, *null_index);
            } else {
                write_long(out, 1 - *null_index);
                encode_value(inner, value, out)?;
            }
        }
        Enc::Record(fields) => {
            let dict = value.cast::<PyDict>().map_err(|_| wrong("dict", value))?;
            for (name, field, convert) in fields {
                let mut item = dict
                    .get_item(name.bind(value.py()))?
                    .ok_or_else(|| err(format!("field {name} missing")))?;
                if let Some(convert) = convert {
                    // An int is a logical value already in its units: the converters pass it.
                    if !item.is_none() && !item.is_exact_instance_of::<PyInt>() {
                        item = convert.bind(value.py()).call1((item,))?;
                    }
                }
                encode_value(field, &item, out)?;
            }
        }
    }
    Ok(())
}

/// Encodes Python values of one schema into Avro bodies, after a fixed header (the wire
/// format's magic byte and schema id). Logical types are given as their underlying values, or
/// converted by the converter named for their top-level field (fastavro's own, handed over by
/// pipelines.avro.RecordWriter). ValueError when a value does not fit: the caller then asks
/// fastavro, for its verdict and its message.
#[pyclass(frozen)]
pub(crate) struct RecordEncoder {
    plan: Enc,
    header: Vec<u8>,
}

#[pymethods]
impl RecordEncoder {
    /// converters: top-level field name -> callable, applied to a value that is neither None
    /// nor an int.
    #[new]
    #[pyo3(signature = (schema_json, header=None, converters=None))]
    fn new(
        py: Python<'_>,
        schema_json: &str,
        header: Option<&[u8]>,
        converters: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Self> {
        let schema =
            Schema::parse_str(schema_json).map_err(|e| err(format!("not an Avro schema: {e}")))?;
        let resolved = ResolvedSchema::try_from(&schema)
            .map_err(|e| err(format!("unresolved schema names: {e}")))?;
        let mut plan = compile_encoder(py, &schema, resolved.get_names(), 0)?;
        if let Some(converters) = converters {
            let Enc::Record(fields) = &mut plan else {
                return Err(err("converters are for the fields of a record".into()));
            };
            for (key, convert) in converters.iter() {
                let name: String = key.extract()?;
                let field = fields
                    .iter_mut()
                    .find(|(n, _, _)| n.bind(py).to_str().is_ok_and(|n| n == name))
                    .ok_or_else(|| err(format!("no field {name} to convert")))?;
                field.2 = Some(convert.unbind());
            }
        }
        Ok(Self {
            plan,
            header: header.unwrap_or_default().to_vec(),
        })
    }

    /// The header, then the record's body.
    fn encode<'py>(
        &self,
        py: Python<'py>,
        value: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let mut out = Vec::with_capacity(128);
        out.extend_from_slice(&self.header);
        encode_value(&self.plan, value, &mut out)?;
        Ok(PyBytes::new(py, &out))
    }
}
