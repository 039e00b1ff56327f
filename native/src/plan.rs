//! The decode plan: a writer schema compiled once into what to read, and which fields of it to
//! build (a projection).

use std::collections::HashMap;

use apache_avro::schema::{Name, ResolvedSchema, Schema};
use pyo3::exceptions::PyValueError;
use pyo3::prelude::*;
use pyo3::types::{PyDict, PyString};

use crate::err;

/// Which fields of a record to build: All builds the whole value, Fields only those named.
pub(crate) enum Projection {
    All,
    Fields(HashMap<String, Projection>),
}

impl Projection {
    pub(crate) fn from_py(spec: &Bound<'_, PyAny>) -> PyResult<Self> {
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

pub(crate) struct Field {
    pub(crate) name: Py<PyString>,
    pub(crate) keep: bool,
    pub(crate) plan: Plan,
}

pub(crate) enum Plan {
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

/// The plan of a schema given as JSON, building what `projection` names.
pub(crate) fn compile_plan(
    py: Python<'_>,
    schema_json: &str,
    projection: &Projection,
) -> PyResult<Plan> {
    let schema =
        Schema::parse_str(schema_json).map_err(|e| err(format!("not an Avro schema: {e}")))?;
    let resolved = ResolvedSchema::try_from(&schema)
        .map_err(|e| err(format!("unresolved schema names: {e}")))?;
    Compiler {
        names: resolved.get_names(),
        depth: 0,
        skipping: false,
    }
    .compile(py, &schema, projection)
}
