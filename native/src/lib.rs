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

use std::collections::HashMap;
use std::sync::Mutex;

use apache_avro::schema::{Name, ResolvedSchema, Schema};
use pyo3::create_exception;
use pyo3::exceptions::{PyLookupError, PyValueError};
use pyo3::prelude::*;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBool, PyBytes, PyDict, PyFloat, PyInt, PyList, PyString};

/// Which fields of a record to build: All builds the whole value, Fields only those named.
enum Projection {
    All,
    Fields(HashMap<String, Projection>),
}

impl Projection {
    fn from_py(spec: &Bound<'_, PyAny>) -> PyResult<Self> {
        if spec.is_none() {
            return Ok(Projection::All);
        }
        let dict = spec.cast::<PyDict>().map_err(|_| {
            PyValueError::new_err("a projection is None or a dict of field name -> projection")
        })?;
        let mut fields = HashMap::new();
        for (name, sub) in dict.iter() {
            fields.insert(name.extract::<String>()?, Projection::from_py(&sub)?);
        }
        Ok(Projection::Fields(fields))
    }
}

struct Field {
    name: Py<PyString>,
    keep: bool,
    plan: Plan,
}

enum Plan {
    Null,
    Boolean,
    Int,
    Long,
    Float,
    Double,
    Bytes,
    String,
    Fixed(usize),
    Enum(Vec<Py<PyString>>),
    Decimal { fixed: Option<usize>, scale: usize },
    Array(Box<Plan>),
    Map(Box<Plan>),
    Union(Vec<Plan>),
    Record(Vec<Field>),
}

fn err(message: String) -> PyErr {
    PyValueError::new_err(message)
}

struct Compiler<'a> {
    names: &'a HashMap<Name, &'a Schema>,
    depth: usize,
    // Inside a field the projection leaves out: it is only skipped, so a timestamp, date or
    // time is just the int or long it is written as.
    skipping: bool,
}

impl Compiler<'_> {
    fn compile(
        &mut self,
        py: Python<'_>,
        schema: &Schema,
        projection: &Projection,
    ) -> PyResult<Plan> {
        if self.depth > 64 {
            return Err(err("recursive schemas are not supported".into()));
        }
        Ok(match schema {
            Schema::Null => Plan::Null,
            Schema::Boolean => Plan::Boolean,
            Schema::Int => Plan::Int,
            Schema::Long => Plan::Long,
            Schema::Float => Plan::Float,
            Schema::Double => Plan::Double,
            Schema::Bytes => Plan::Bytes,
            Schema::String => Plan::String,
            Schema::Fixed(fixed) => Plan::Fixed(fixed.size),
            Schema::Enum(e) => Plan::Enum(
                e.symbols
                    .iter()
                    .map(|s| PyString::intern(py, s).unbind())
                    .collect(),
            ),
            Schema::Decimal(d) => Plan::Decimal {
                fixed: match d.inner.as_ref() {
                    Schema::Fixed(f) => Some(f.size),
                    _ => None,
                },
                scale: d.scale,
            },
            Schema::Array(a) => Plan::Array(Box::new(self.compile(py, &a.items, projection)?)),
            Schema::Map(m) => Plan::Map(Box::new(self.compile(py, &m.types, projection)?)),
            Schema::Union(u) => Plan::Union(
                u.variants()
                    .iter()
                    .map(|v| self.compile(py, v, projection))
                    .collect::<PyResult<_>>()?,
            ),
            Schema::Record(r) => {
                let mut fields = Vec::with_capacity(r.fields.len());
                for field in &r.fields {
                    let (keep, sub) = match projection {
                        Projection::All => (true, &Projection::All),
                        Projection::Fields(wanted) => match wanted.get(&field.name) {
                            Some(sub) => (true, sub),
                            None => (false, &Projection::All),
                        },
                    };
                    self.depth += 1;
                    let outer = self.skipping;
                    self.skipping |= !keep;
                    let plan = self.compile(py, &field.schema, sub);
                    self.skipping = outer;
                    self.depth -= 1;
                    let plan = plan?;
                    fields.push(Field {
                        name: PyString::intern(py, &field.name).unbind(),
                        keep,
                        plan,
                    });
                }
                Plan::Record(fields)
            }
            Schema::Ref { name } => {
                let named = self
                    .names
                    .get(name)
                    .ok_or_else(|| err(format!("unknown schema name {name}")))?;
                self.depth += 1;
                let plan = self.compile(py, named, projection)?;
                self.depth -= 1;
                plan
            }
            Schema::Date | Schema::TimeMillis if self.skipping => Plan::Int,
            Schema::TimeMicros
            | Schema::TimestampMillis
            | Schema::TimestampMicros
            | Schema::TimestampNanos
            | Schema::LocalTimestampMillis
            | Schema::LocalTimestampMicros
            | Schema::LocalTimestampNanos
                if self.skipping =>
            {
                Plan::Long
            }
            // Timestamps, dates, times, UUIDs read: fastavro turns them into datetime, date, time
            // and UUID objects; the caller decodes such schemas with fastavro instead.
            other => return Err(err(format!("unsupported type or logical type: {other:?}"))),
        })
    }
}

/// Array items that take no bytes (null, an empty record) one record may hold. An array's
/// item count comes before its items, so without a bound a few bytes that claim 2^62 such
/// items would keep the decoder, and the GIL, busy for ever; every other item takes at least
/// a byte, and running out of bytes ends the loop.
const MAX_EMPTY_ITEMS: usize = 1 << 20;

struct Reader<'a> {
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

static DECIMAL: PyOnceLock<Py<PyAny>> = PyOnceLock::new();

/// Unscaled big-endian bytes and scale of a decimal.
type DecimalKey = (Vec<u8>, usize);

/// Decodes Avro record bodies (no wire-format header) of one writer schema, building only
/// the projected fields.
#[pyclass(frozen)]
struct ProjectingDecoder {
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
        let schema =
            Schema::parse_str(schema_json).map_err(|e| err(format!("not an Avro schema: {e}")))?;
        let resolved = ResolvedSchema::try_from(&schema)
            .map_err(|e| err(format!("unresolved schema names: {e}")))?;
        let projection = match projection {
            Some(spec) => Projection::from_py(spec)?,
            None => Projection::All,
        };
        let plan = Compiler {
            names: resolved.get_names(),
            depth: 0,
            skipping: false,
        }
        .compile(py, &schema, &projection)?;
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
    fn decode_body<'py>(&self, py: Python<'py>, body: &[u8]) -> PyResult<Bound<'py, PyAny>> {
        let mut reader = Reader { data: body, pos: 0, empty_items: 0 };
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

fn skip(plan: &Plan, r: &mut Reader<'_>) -> PyResult<()> {
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

/// How to write a Python value of one Avro type. Logical types are written as their underlying
/// type: the caller hands over values already converted (pipelines.avro.RecordWriter does,
/// with fastavro's own converters).
enum Enc {
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
    Nullable { null_index: i64, value: Box<Enc> },
    /// Fields in order, each with the converter of its logical value (top level only).
    Record(Vec<(Py<PyString>, Enc, Option<Py<PyAny>>)>),
}

fn compile_encoder(
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

fn write_long(out: &mut Vec<u8>, value: i64) {
    let mut n = ((value << 1) ^ (value >> 63)) as u64;
    while n >= 0x80 {
        out.push((n as u8) | 0x80);
        n >>= 7;
    }
    out.push(n as u8);
}

fn wrong(what: &str, value: &Bound<'_, PyAny>) -> PyErr {
    let kind = value
        .get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_default();
    err(format!("{what} expected, got {kind}"))
}

fn encode_value(enc: &Enc, value: &Bound<'_, PyAny>, out: &mut Vec<u8>) -> PyResult<()> {
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
struct RecordEncoder {
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

create_exception!(
    seatflow_native,
    UnknownSchemaError,
    PyLookupError,
    "Not a wire-format record of a schema id the WireDecoder was given a reader for."
);

/// How a WireDecoder reads the bodies of one schema id.
enum Body {
    Native(Py<ProjectingDecoder>),
    Python(Py<PyAny>), // a callable of the body bytes (fastavro, for what the native one does not take)
}

/// Reads Confluent wire-format records (magic byte 0, 4-byte big-endian schema id, body) with a
/// reader per schema id. UnknownSchemaError for bytes without the header, or of an id it has no
/// reader for: the caller looks the schema up, adds a reader, and asks again.
#[pyclass(frozen)]
struct WireDecoder {
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
        self.readers.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[pymodule]
fn seatflow_native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<ProjectingDecoder>()?;
    m.add_class::<RecordEncoder>()?;
    m.add_class::<WireDecoder>()?;
    m.add("UnknownSchemaError", m.py().get_type::<UnknownSchemaError>())?;
    Ok(())
}
