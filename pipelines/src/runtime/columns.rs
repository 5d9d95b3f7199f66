//! Typed access to a record batch's columns by name, for turning SQL results
//! into ClickHouse rows.

use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, UInt64Type};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;

/// Column `name` of `batch`, cast to `to` when it has another type.
pub(crate) fn column_as(
    batch: &RecordBatch,
    name: &str,
    to: &DataType,
) -> Result<ArrayRef, ArrowError> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| ArrowError::SchemaError(format!("batch lacks column `{name}`")))?;
    if column.data_type() == to {
        Ok(Arc::clone(column))
    } else {
        cast(column, to)
    }
}

/// Columns of one batch, each cast to the type its accessor returns, so SQL
/// may produce any integer width (`COUNT` gives Int64, `SUM` of UInt32 gives
/// UInt64) without the row mapping caring.
pub struct Columns<'a> {
    batch: &'a RecordBatch,
}

impl<'a> Columns<'a> {
    /// Wraps a batch.
    pub fn new(batch: &'a RecordBatch) -> Self {
        Self { batch }
    }

    fn column(&self, name: &str, to: &DataType) -> Result<ArrayRef, ArrowError> {
        column_as(self.batch, name, to)
    }

    /// A non-null unsigned integer column (nulls read as 0, e.g. `SUM` of nothing).
    pub fn u64(&self, name: &str) -> Result<Vec<u64>, ArrowError> {
        let array = self.column(name, &DataType::UInt64)?;
        Ok(array
            .as_primitive::<UInt64Type>()
            .iter()
            .map(|v| v.unwrap_or(0))
            .collect())
    }

    /// A signed integer column; fails on nulls.
    pub fn i64(&self, name: &str) -> Result<Vec<i64>, ArrowError> {
        let array = self.column(name, &DataType::Int64)?;
        array
            .as_primitive::<Int64Type>()
            .iter()
            .map(|v| {
                v.ok_or_else(|| {
                    ArrowError::InvalidArgumentError(format!("column `{name}` has a null"))
                })
            })
            .collect()
    }

    /// A nullable signed integer column.
    pub fn opt_i64(&self, name: &str) -> Result<Vec<Option<i64>>, ArrowError> {
        let array = self.column(name, &DataType::Int64)?;
        Ok(array.as_primitive::<Int64Type>().iter().collect())
    }

    /// A nullable float column.
    pub fn opt_f64(&self, name: &str) -> Result<Vec<Option<f64>>, ArrowError> {
        let array = self.column(name, &DataType::Float64)?;
        Ok(array.as_primitive::<Float64Type>().iter().collect())
    }

    /// A non-null string column.
    pub fn string(&self, name: &str) -> Result<Vec<String>, ArrowError> {
        let array = self.column(name, &DataType::Utf8)?;
        array
            .as_string::<i32>()
            .iter()
            .map(|v| {
                v.map(str::to_owned).ok_or_else(|| {
                    ArrowError::InvalidArgumentError(format!("column `{name}` has a null"))
                })
            })
            .collect()
    }

    /// A nullable string column.
    pub fn opt_string(&self, name: &str) -> Result<Vec<Option<String>>, ArrowError> {
        let array = self.column(name, &DataType::Utf8)?;
        Ok(array
            .as_string::<i32>()
            .iter()
            .map(|v| v.map(str::to_owned))
            .collect())
    }

    /// A nullable unsigned 32-bit column.
    pub fn opt_u32(&self, name: &str) -> Result<Vec<Option<u32>>, ArrowError> {
        let array = self.column(name, &DataType::UInt32)?;
        Ok(array
            .as_primitive::<datafusion::arrow::datatypes::UInt32Type>()
            .iter()
            .collect())
    }

    /// A nullable unsigned 64-bit column.
    pub fn opt_u64(&self, name: &str) -> Result<Vec<Option<u64>>, ArrowError> {
        let array = self.column(name, &DataType::UInt64)?;
        Ok(array.as_primitive::<UInt64Type>().iter().collect())
    }

    /// A nullable boolean column.
    pub fn opt_bool(&self, name: &str) -> Result<Vec<Option<bool>>, ArrowError> {
        let array = self.column(name, &DataType::Boolean)?;
        Ok(array.as_boolean().iter().collect())
    }
}
