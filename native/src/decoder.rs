//! ProjectingDecoder: record bodies read by a plan, building only the projected fields.

use std::collections::HashMap;
use std::sync::Mutex;

use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyDict, PyList, PyString};

use crate::err;
use crate::plan::{compile_plan, Plan, Projection};

/// Array items that take no bytes (null, an empty record) one record may hold. An array's
/// item count comes before its items, so without a bound a few bytes that claim 2^62 such
/// items would keep the decoder, and the GIL, busy for ever; every other item takes at least
/// a byte, and running out of bytes ends the loop.
pub(crate) const MAX_EMPTY_ITEMS: usize = 1 << 20;

pub(crate) struct Reader<'a> {
    data: &'a [u8],
    pos: usize,
    empty_items: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> PyResult<&'a [u8]> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|end| *end <= self.data.len())
            .ok_or_else(|| {
                err(format!(
                    "truncated: {n} bytes wanted at offset {} of {}",
                    self.pos,
                    self.data.len()
                ))
            })?;
        let out = &self.data[self.pos..end];
        self.pos = end;
        Ok(out)
    }

    fn long(&mut self) -> PyResult<i64> {
        let mut value: u64 = 0;
        for shift in (0..70).step_by(7) {
            let byte = *self.take(1)?.first().unwrap_or(&0);
            value |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
            }
        }
        Err(err(format!(
            "varint longer than 10 bytes at offset {}",
            self.pos
        )))
    }

    fn length(&mut self) -> PyResult<usize> {
        let n = self.long()?;
        usize::try_from(n).map_err(|_| err(format!("negative length {n} at offset {}", self.pos)))
    }

    fn sized(&mut self) -> PyResult<&'a [u8]> {
        let n = self.length()?;
        self.take(n)
    }

    /// After an array item read from `started`: counts it against MAX_EMPTY_ITEMS when it took
    /// no bytes.
    fn item_done(&mut self, started: usize) -> PyResult<()> {
        if self.pos == started {
            self.empty_items += 1;
            if self.empty_items > MAX_EMPTY_ITEMS {
                return Err(err(format!(
                    "more than {MAX_EMPTY_ITEMS} array items of zero bytes, at offset {}",
                    self.pos
                )));
            }
        }
        Ok(())
    }

    /// Items of the next array or map block; 0 at the end. A negative count comes with the
    /// block's size in bytes, which is read and ignored.
    fn block(&mut self) -> PyResult<usize> {
        let count = self.long()?;
        if count < 0 {
            self.long()?;
        }
        usize::try_from(count.unsigned_abs()).map_err(|_| err("block too large".into()))
    }
}

pub(crate) static DECIMAL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Unscaled big-endian bytes and scale of a decimal.
pub(crate) type DecimalKey = (Vec<u8>, usize);

/// Decodes Avro record bodies (no wire-format header) of one writer schema, building only
/// the projected fields.
#[pyclass(frozen)]
pub(crate) struct ProjectingDecoder {
    plan: Plan,
    decimals: Mutex<HashMap<DecimalKey, Py<PyAny>>>,
}

#[pymethods]
impl ProjectingDecoder {
    /// projection: None for every field, or a dict of field name -> projection of that field
    /// (None for the whole of it). ValueError for a schema this decoder does not handle.
    #[new]
    #[pyo3(signature = (schema_json, projection=None))]
    fn new(
        py: Python<'_>,
        schema_json: &str,
        projection: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Self> {
        let projection = match projection {
            Some(spec) => Projection::from_py(spec)?,
            None => Projection::All,
        };
        let plan = compile_plan(py, schema_json, &projection)?;
        Ok(Self {
            plan,
            decimals: Mutex::new(HashMap::new()),
        })
    }

    /// The projected value of one record body; ValueError when the bytes do not match.
    fn decode<'py>(&self, py: Python<'py>, body: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        self.decode_body(py, body)
    }
}

impl ProjectingDecoder {
    pub(crate) fn decode_body<'py>(
        &self,
        py: Python<'py>,
        body: &[u8],
    ) -> PyResult<Bound<'py, PyAny>> {
        let mut reader = Reader {
            data: body,
            pos: 0,
            empty_items: 0,
        };
        let value = self.read(py, &self.plan, &mut reader)?;
        if reader.pos != body.len() {
            return Err(err(format!(
                "{} bytes left after the record",
                body.len() - reader.pos
            )));
        }
        Ok(value)
    }

    fn read<'py>(
        &self,
        py: Python<'py>,
        plan: &Plan,
        r: &mut Reader<'_>,
    ) -> PyResult<Bound<'py, PyAny>> {
        Ok(match plan {
            Plan::Null => py.None().into_bound(py),
            Plan::Boolean => {
                let byte = r.take(1)?[0];
                if byte > 1 {
                    return Err(err(format!("boolean byte {byte} at offset {}", r.pos - 1)));
                }
                (byte == 1).into_pyobject(py)?.to_owned().into_any()
            }
            Plan::Int | Plan::Long => r.long()?.into_pyobject(py)?.into_any(),
            Plan::Float => f32::from_le_bytes(r.take(4)?.try_into().unwrap_or_default())
                .into_pyobject(py)?
                .into_any(),
            Plan::Double => f64::from_le_bytes(r.take(8)?.try_into().unwrap_or_default())
                .into_pyobject(py)?
                .into_any(),
            Plan::Bytes => PyBytes::new(py, r.sized()?).into_any(),
            Plan::String => {
                let at = r.pos;
                let text = std::str::from_utf8(r.sized()?)
                    .map_err(|e| err(format!("string at offset {at}: {e}")))?;
                PyString::new(py, text).into_any()
            }
            Plan::Fixed(size) => PyBytes::new(py, r.take(*size)?).into_any(),
            Plan::Enum(symbols) => {
                let index = r.long()?;
                let symbol = usize::try_from(index).ok().and_then(|i| symbols.get(i));
                symbol
                    .ok_or_else(|| err(format!("enum index {index} out of range")))?
                    .bind(py)
                    .clone()
                    .into_any()
            }
            Plan::Decimal { fixed, scale } => {
                let bytes = match fixed {
                    Some(size) => r.take(*size)?,
                    None => r.sized()?,
                };
                self.decimal(py, bytes, *scale)?
            }
            Plan::Array(items) => {
                let list = PyList::empty(py);
                loop {
                    let count = r.block()?;
                    if count == 0 {
                        break;
                    }
                    for _ in 0..count {
                        let at = r.pos;
                        list.append(self.read(py, items, r)?)?;
                        r.item_done(at)?;
                    }
                }
                list.into_any()
            }
            Plan::Map(values) => {
                let dict = PyDict::new(py);
                loop {
                    let count = r.block()?;
                    if count == 0 {
                        break;
                    }
                    for _ in 0..count {
                        let at = r.pos;
                        let key = std::str::from_utf8(r.sized()?)
                            .map_err(|e| err(format!("map key at offset {at}: {e}")))?;
                        dict.set_item(key, self.read(py, values, r)?)?;
                    }
                }
                dict.into_any()
            }
            Plan::Union(branches) => {
                let index = r.long()?;
                let branch = usize::try_from(index).ok().and_then(|i| branches.get(i));
                self.read(
                    py,
                    branch.ok_or_else(|| err(format!("union branch {index} out of range")))?,
                    r,
                )?
            }
            Plan::Record(fields) => {
                let dict = PyDict::new(py);
                for field in fields {
                    if field.keep {
                        dict.set_item(field.name.bind(py), self.read(py, &field.plan, r)?)?;
                    } else {
                        skip(&field.plan, r)?;
                    }
                }
                dict.into_any()
            }
        })
    }

    /// decimal.Decimal of big-endian two's-complement unscaled bytes; each value built once.
    fn decimal<'py>(
        &self,
        py: Python<'py>,
        bytes: &[u8],
        scale: usize,
    ) -> PyResult<Bound<'py, PyAny>> {
        let key = (bytes.to_vec(), scale);
        if let Some(done) = self
            .decimals
            .lock()
            .map_err(|_| err("decimal cache poisoned".into()))?
            .get(&key)
        {
            return Ok(done.bind(py).clone());
        }
        let class = DECIMAL.get_or_try_init(py, || -> PyResult<Py<PyAny>> {
            Ok(py.import("decimal")?.getattr("Decimal")?.unbind())
        })?;
        let kwargs = PyDict::new(py);
        kwargs.set_item("signed", true)?;
        let unscaled = py.import("builtins")?.getattr("int")?.call_method(
            "from_bytes",
            (PyBytes::new(py, bytes), "big"),
            Some(&kwargs),
        )?;
        let value = class
            .bind(py)
            .call1((format!("{}E-{scale}", unscaled.str()?),))?;
        let mut cache = self
            .decimals
            .lock()
            .map_err(|_| err("decimal cache poisoned".into()))?;
        if cache.len() < 10_000 {
            cache.insert(key, value.clone().unbind());
        }
        Ok(value)
    }
}

pub(crate) fn skip(plan: &Plan, r: &mut Reader<'_>) -> PyResult<()> {
    match plan {
        Plan::Null => {}
        Plan::Boolean => {
            r.take(1)?;
        }
        Plan::Int | Plan::Long | Plan::Enum(_) => {
            r.long()?;
        }
        Plan::Float => {
            r.take(4)?;
        }
        Plan::Double => {
            r.take(8)?;
        }
        Plan::Bytes | Plan::String | Plan::Decimal { fixed: None, .. } => {
            r.sized()?;
        }
        Plan::Fixed(size)
        | Plan::Decimal {
            fixed: Some(size), ..
        } => {
            r.take(*size)?;
        }
        Plan::Array(items) => loop {
            let count = r.block()?;
            if count == 0 {
                break;
            }
            for _ in 0..count {
                let at = r.pos;
                skip(items, r)?;
                r.item_done(at)?;
            }
        },
        Plan::Map(values) => loop {
            let count = r.block()?;
            if count == 0 {
                break;
            }
            for _ in 0..count {
                r.sized()?;
                skip(values, r)?;
            }
        },
        Plan::Union(branches) => {
            let index = r.long()?;
            let branch = usize::try_from(index).ok().and_then(|i| branches.get(i));
            skip(
                branch.ok_or_else(|| err(format!("union branch {index} out of range")))?,
                r,
            )?;
        }
        Plan::Record(fields) => {
            for field in fields {
                skip(&field.plan, r)?;
            }
        }
    }
    Ok(())
}
