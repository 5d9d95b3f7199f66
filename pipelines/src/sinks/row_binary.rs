//! Raw tables written as ClickHouse RowBinary straight from the decoded
//! Arrow columns. A raw table gets one row per input event; building an
//! owned Rust row per event (a `String` per text field) and serializing it
//! cost more than all the windowed aggregation.

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, PrimitiveArray, StringArray,
};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, UInt32Type, UInt64Type};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::record_batch::RecordBatch;

use crate::jobs::epoch_seconds;
use crate::runtime::columns::column_as;

/// The ClickHouse type of a raw column, and so its RowBinary encoding.
/// A null in the input of a non-`Nullable` column is written as the type's
/// default (`''`, 0, false).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `String`.
    Text,
    /// `DateTime`, from epoch milliseconds (floored to seconds).
    DateTimeFromMs,
    /// `Int64`.
    Int64,
    /// `UInt32`.
    UInt32,
    /// `UInt64`.
    UInt64,
    /// `UInt8`, 0 or 1.
    Bool,
    /// `Float64`.
    Float64,
}

/// One column of a raw table and the input column it is read from.
#[derive(Debug, Clone, Copy)]
pub struct RawColumn {
    /// The ClickHouse column.
    pub name: &'static str,
    /// The column of the job's input batch.
    pub from: &'static str,
    /// Its ClickHouse type.
    pub kind: Kind,
    /// Whether the ClickHouse column is `Nullable`.
    pub nullable: bool,
}

impl RawColumn {
    /// A non-`Nullable` column read from the input column of its name.
    pub const fn new(name: &'static str, kind: Kind) -> Self {
        Self {
            name,
            from: name,
            kind,
            nullable: false,
        }
    }

    /// A `Nullable` column read from the input column of its name.
    pub const fn nullable(name: &'static str, kind: Kind) -> Self {
        Self {
            nullable: true,
            ..Self::new(name, kind)
        }
    }

    /// The same column read from another input column.
    pub const fn from(self, from: &'static str) -> Self {
        Self { from, ..self }
    }
}

/// A table that keeps a job's input rows, each once.
///
/// ```
/// use livepulse_pipelines::sinks::row_binary::{Kind, RawColumn, RawTable};
///
/// const TABLE: RawTable = RawTable {
///     name: "events",
///     columns: &[
///         RawColumn::new("event_id", Kind::Text),
///         RawColumn::new("ts", Kind::DateTimeFromMs),
///         RawColumn::new("ts_ms", Kind::Int64).from("ts"),
///     ],
///     only: None,
/// };
/// assert_eq!(TABLE.insert_sql(), "INSERT INTO events (event_id, ts, ts_ms) FORMAT RowBinary");
/// ```
#[derive(Debug, Clone, Copy)]
pub struct RawTable {
    /// The ClickHouse table.
    pub name: &'static str,
    /// Its columns, in the order they are written.
    pub columns: &'static [RawColumn],
    /// `(input column, value)`: only rows with this value are the table's
    /// (another job keeps the rest).
    pub only: Option<(&'static str, &'static str)>,
}

impl RawTable {
    /// The `INSERT` statement [`RawTable::encode`]'s bytes follow.
    pub fn insert_sql(&self) -> String {
        let columns: Vec<&str> = self.columns.iter().map(|c| c.name).collect();
        format!(
            "INSERT INTO {} ({}) FORMAT RowBinary",
            self.name,
            columns.join(", ")
        )
    }

    /// Appends the table's rows of `batch` to `out`.
    pub fn encode(&self, batch: &RecordBatch, out: &mut RowBinary) -> Result<(), ArrowError> {
        let keep: Option<Vec<bool>> = match self.only {
            None => None,
            Some((column, value)) => {
                let column = column_as(batch, column, &DataType::Utf8)?;
                Some(
                    column
                        .as_string::<i32>()
                        .iter()
                        .map(|v| v == Some(value))
                        .collect(),
                )
            }
        };
        let arrays: Vec<ArrayRef> = self
            .columns
            .iter()
            .map(|c| column_as(batch, c.from, &c.kind.arrow_type()))
            .collect::<Result<_, _>>()?;
        let cells: Vec<Cell<'_>> = self
            .columns
            .iter()
            .zip(&arrays)
            .map(|(c, array)| Cell::new(c, array))
            .collect();
        for row in 0..batch.num_rows() {
            if keep.as_ref().is_some_and(|keep| !keep[row]) {
                continue;
            }
            for cell in &cells {
                cell.write(row, out);
            }
            out.rows += 1;
        }
        Ok(())
    }
}

impl Kind {
    fn arrow_type(self) -> DataType {
        match self {
            Kind::Text => DataType::Utf8,
            Kind::DateTimeFromMs | Kind::Int64 => DataType::Int64,
            Kind::UInt32 => DataType::UInt32,
            Kind::UInt64 => DataType::UInt64,
            Kind::Bool => DataType::Boolean,
            Kind::Float64 => DataType::Float64,
        }
    }
}

/// One column's values, typed once per batch.
struct Cell<'a> {
    values: Values<'a>,
    nullable: bool,
}

enum Values<'a> {
    Text(&'a StringArray),
    DateTimeFromMs(&'a PrimitiveArray<Int64Type>),
    Int64(&'a PrimitiveArray<Int64Type>),
    UInt32(&'a PrimitiveArray<UInt32Type>),
    UInt64(&'a PrimitiveArray<UInt64Type>),
    Bool(&'a BooleanArray),
    Float64(&'a PrimitiveArray<Float64Type>),
}

impl<'a> Cell<'a> {
    fn new(column: &RawColumn, array: &'a ArrayRef) -> Self {
        let values = match column.kind {
            Kind::Text => Values::Text(array.as_string::<i32>()),
            Kind::DateTimeFromMs => Values::DateTimeFromMs(array.as_primitive()),
            Kind::Int64 => Values::Int64(array.as_primitive()),
            Kind::UInt32 => Values::UInt32(array.as_primitive()),
            Kind::UInt64 => Values::UInt64(array.as_primitive()),
            Kind::Bool => Values::Bool(array.as_boolean()),
            Kind::Float64 => Values::Float64(array.as_primitive()),
        };
        Self {
            values,
            nullable: column.nullable,
        }
    }

    fn write(&self, row: usize, out: &mut RowBinary) {
        let valid = match &self.values {
            Values::Text(a) => a.is_valid(row),
            Values::DateTimeFromMs(a) | Values::Int64(a) => a.is_valid(row),
            Values::UInt32(a) => a.is_valid(row),
            Values::UInt64(a) => a.is_valid(row),
            Values::Bool(a) => a.is_valid(row),
            Values::Float64(a) => a.is_valid(row),
        };
        if self.nullable {
            out.bytes.push(u8::from(!valid));
            if !valid {
                return;
            }
        }
        // A null array slot holds an unspecified value: write the default.
        match &self.values {
            Values::Text(a) => out.text(if valid { a.value(row) } else { "" }),
            Values::DateTimeFromMs(a) => {
                let seconds = if valid {
                    epoch_seconds(a.value(row))
                } else {
                    0
                };
                out.bytes.extend_from_slice(&seconds.to_le_bytes());
            }
            Values::Int64(a) => out.fixed(valid, a.value(row)),
            Values::UInt32(a) => out.fixed(valid, a.value(row)),
            Values::UInt64(a) => out.fixed(valid, a.value(row)),
            Values::Bool(a) => out.bytes.push(u8::from(valid && a.value(row))),
            Values::Float64(a) => out.fixed(valid, a.value(row)),
        }
    }
}

/// Rows in ClickHouse's RowBinary format.
#[derive(Debug, Default)]
pub struct RowBinary {
    bytes: Vec<u8>,
    rows: usize,
}

impl RowBinary {
    /// Rows written.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// Whether no row was written.
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The encoded rows.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Forgets the rows, keeping the memory for the next ones.
    pub fn clear(&mut self) {
        self.bytes.clear();
        self.rows = 0;
    }

    /// A string: its length as unsigned LEB128, then its bytes.
    fn text(&mut self, value: &str) {
        let mut len = value.len();
        while len >= 0x80 {
            self.bytes.push((len as u8) | 0x80);
            len >>= 7;
        }
        self.bytes.push(len as u8);
        self.bytes.extend_from_slice(value.as_bytes());
    }

    /// A fixed-width number, little-endian; the default when not `valid`.
    fn fixed<T: LittleEndian>(&mut self, valid: bool, value: T) {
        let value = if valid { value } else { T::default() };
        value.write_le(&mut self.bytes);
    }
}

/// Fixed-width numbers as RowBinary writes them.
trait LittleEndian: Default + Copy {
    fn write_le(self, out: &mut Vec<u8>);
}

macro_rules! little_endian {
    ($($t:ty),*) => {
        $(impl LittleEndian for $t {
            fn write_le(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        })*
    };
}

little_endian!(i64, u32, u64, f64);

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::array::{Int64Array, UInt32Array};
    use datafusion::arrow::datatypes::{Field, Schema};

    use super::*;

    const TABLE: RawTable = RawTable {
        name: "t",
        columns: &[
            RawColumn::new("id", Kind::Text),
            RawColumn::new("ts", Kind::DateTimeFromMs),
            RawColumn::nullable("n", Kind::UInt32),
            RawColumn::nullable("note", Kind::Text),
            RawColumn::new("count", Kind::UInt64).from("n"),
        ],
        only: Some(("kind", "keep")),
    };

    #[test]
    fn rows_are_encoded_as_clickhouse_reads_them() {
        let schema = Schema::new(vec![
            Field::new("id", DataType::Utf8, false),
            Field::new("ts", DataType::Int64, false),
            Field::new("n", DataType::UInt32, true),
            Field::new("note", DataType::Utf8, true),
            Field::new("kind", DataType::Utf8, false),
        ]);
        let long = "x".repeat(200);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![
                Arc::new(StringArray::from(vec!["a", "b", "c"])),
                Arc::new(Int64Array::from(vec![1_999, 5_000, -1])),
                Arc::new(UInt32Array::from(vec![Some(7), Some(9), None])),
                Arc::new(StringArray::from(vec![None, None, Some(long.as_str())])),
                Arc::new(StringArray::from(vec!["keep", "other", "keep"])),
            ],
        )
        .unwrap();
        let mut out = RowBinary::default();
        TABLE.encode(&batch, &mut out).unwrap();

        let mut want = vec![
            1, b'a', 1, 0, 0, 0, 0, 7, 0, 0, 0, 1, 7, 0, 0, 0, 0, 0, 0, 0,
        ];
        // Before the epoch: DateTime cannot hold it, so 0; a null count is 0.
        want.extend([1, b'c', 0, 0, 0, 0, 1, 0, 200, 1]);
        want.extend(long.as_bytes());
        want.extend([0; 8]);
        assert_eq!(out.rows(), 2, "the `other` row is another job's");
        assert_eq!(out.bytes(), want.as_slice());
    }

    #[test]
    fn a_missing_input_column_is_an_error() {
        let schema = Schema::new(vec![Field::new("id", DataType::Utf8, false)]);
        let batch = RecordBatch::try_new(
            Arc::new(schema),
            vec![Arc::new(StringArray::from(vec!["a"]))],
        )
        .unwrap();
        let err = TABLE.encode(&batch, &mut RowBinary::default()).unwrap_err();
        assert!(err.to_string().contains("`kind`"), "{err}");
    }
}
