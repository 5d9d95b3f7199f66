//! DataFusion adapter: every function as a [`ScalarUDF`] of the same name.
//!
//! One generic [`ScalarUDFImpl`] (`RowUdf`) wraps any plain `fn(A) -> R` or
//! `fn(A, B) -> R` whose arguments are `i64`, `f64` or `bool` and whose result
//! is `f64` or `Option<f64>`: these UDFs return `Float64`. `distinct_key`
//! takes any string type and returns `Int64` (`KeyUdf`). Every UDF is
//! immutable and strict: a NULL argument gives a NULL result, as does `None`
//! from the plain function.
//!
//! Argument types use [`Signature::coercible`], so SQL needs no casts:
//!
//! | Rust | accepted SQL types | evaluated as |
//! |---|---|---|
//! | `i64` | any integer (`TINYINT` .. `BIGINT`, `UInt8` .. `UInt64`) | `Int64`; a `UInt64` above `i64::MAX` is an error |
//! | `f64` | any integer, float or decimal | `Float64` |
//! | `bool` | `BOOLEAN` only (an integer is an error, not silently truthy) | `Boolean` |
//!
//! An untyped `NULL` literal is accepted for any argument.

use std::fmt;
use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, Float64Array, Int64Array};
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type};
use datafusion::common::types::{NativeType, logical_boolean, logical_float64, logical_int64};
use datafusion::common::{Result, internal_datafusion_err, internal_err};
use datafusion::logical_expr::{
    Coercion, ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature,
    TypeSignatureClass, Volatility,
};
use datafusion::prelude::SessionContext;

/// Registers every function of this crate in `ctx`, under its Rust name.
///
/// ```
/// use datafusion::prelude::SessionContext;
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> datafusion::error::Result<()> {
/// let ctx = SessionContext::new();
/// livepulse_udfs::datafusion::register_all(&ctx);
/// let batches = ctx.sql("SELECT startup_score(2000) AS s").await?.collect().await?;
/// let column = batches[0].column(0);
/// let scores = column
///     .as_any()
///     .downcast_ref::<datafusion::arrow::array::Float64Array>()
///     .unwrap();
/// assert_eq!(scores.value(0), 80.0);
/// # Ok(())
/// # }
/// ```
pub fn register_all(ctx: &SessionContext) {
    for udf in all() {
        ctx.register_udf(udf);
    }
}

/// Every function of this crate as a [`ScalarUDF`], for registries other than
/// a [`SessionContext`] (a `SessionState` builder, a custom `FunctionRegistry`).
#[must_use]
pub fn all() -> Vec<ScalarUDF> {
    // Names the UDF after the plain function so the two cannot drift apart.
    macro_rules! udf {
        ($arity:ident, $function:ident) => {
            RowUdf::$arity(stringify!($function), crate::$function)
        };
    }
    vec![
        udf!(binary, interaction_rate),
        udf!(unary, startup_score),
        udf!(binary, smoothness_score),
        udf!(binary, quality_score),
        udf!(binary, success_score),
        udf!(unary, playback_score),
        ScalarUDF::new_from_impl(KeyUdf::new()),
    ]
}

/// `distinct_key` over a string column.
#[derive(Debug, PartialEq, Eq, Hash)]
struct KeyUdf {
    signature: Signature,
}

impl KeyUdf {
    fn new() -> Self {
        Self {
            signature: Signature::string(1, Volatility::Immutable),
        }
    }
}

impl ScalarUDFImpl for KeyUdf {
    fn name(&self) -> &str {
        "distinct_key"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Int64)
    }

    fn is_strict(&self) -> bool {
        true
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let [values] = arrays.as_slice() else {
            return internal_err!("distinct_key expects 1 argument, got {}", arrays.len());
        };
        let keys: Int64Array = match values.data_type() {
            DataType::Utf8 => values.as_string::<i32>().iter().map(keys).collect(),
            DataType::LargeUtf8 => values.as_string::<i64>().iter().map(keys).collect(),
            DataType::Utf8View => values.as_string_view().iter().map(keys).collect(),
            other => return Err(not_coerced("distinct_key", "a string", other)),
        };
        Ok(ColumnarValue::Array(Arc::new(keys)))
    }
}

fn keys(value: Option<&str>) -> Option<i64> {
    value.map(crate::distinct_key)
}

/// A plain Rust function applied row by row to Arrow arrays.
struct RowUdf<F> {
    name: &'static str,
    signature: Signature,
    function: F,
}

impl<A: SqlArg, R: SqlResult> RowUdf<fn(A) -> R> {
    fn unary(name: &'static str, function: fn(A) -> R) -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            name,
            signature: Signature::coercible(vec![A::coercion()], Volatility::Immutable),
            function,
        })
    }
}

impl<A: SqlArg, B: SqlArg, R: SqlResult> RowUdf<fn(A, B) -> R> {
    fn binary(name: &'static str, function: fn(A, B) -> R) -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            name,
            signature: Signature::coercible(
                vec![A::coercion(), B::coercion()],
                Volatility::Immutable,
            ),
            function,
        })
    }
}

/// Evaluates a plain function over argument arrays already coerced to the
/// signature's types, all of the same length.
trait Rows {
    fn evaluate(&self, name: &str, args: &[ArrayRef]) -> Result<Float64Array>;
}

impl<A: SqlArg, R: SqlResult> Rows for fn(A) -> R {
    fn evaluate(&self, name: &str, args: &[ArrayRef]) -> Result<Float64Array> {
        let [a] = args else {
            return internal_err!("{name} expects 1 argument, got {}", args.len());
        };
        Ok(A::rows(a, name)?.map(|a| self(a?).into_value()).collect())
    }
}

impl<A: SqlArg, B: SqlArg, R: SqlResult> Rows for fn(A, B) -> R {
    fn evaluate(&self, name: &str, args: &[ArrayRef]) -> Result<Float64Array> {
        let [a, b] = args else {
            return internal_err!("{name} expects 2 arguments, got {}", args.len());
        };
        Ok(A::rows(a, name)?
            .zip(B::rows(b, name)?)
            .map(|(a, b)| self(a?, b?).into_value())
            .collect())
    }
}

impl<F: Rows + Send + Sync + 'static> ScalarUDFImpl for RowUdf<F> {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Float64)
    }

    fn is_strict(&self) -> bool {
        true
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        // All-scalar arguments become one-row arrays, and DataFusion turns a
        // one-row result for scalar input back into a scalar.
        let arrays = ColumnarValue::values_to_arrays(&args.args)?;
        let result = self.function.evaluate(self.name, &arrays)?;
        Ok(ColumnarValue::Array(Arc::new(result)))
    }
}

// ScalarUDFImpl needs Eq and Hash. The name identifies the function: comparing
// function pointers is unreliable (the same function may have two addresses).
impl<F> PartialEq for RowUdf<F> {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl<F> Eq for RowUdf<F> {}

impl<F> Hash for RowUdf<F> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

impl<F> fmt::Debug for RowUdf<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowUdf")
            .field("name", &self.name)
            .field("signature", &self.signature)
            .finish_non_exhaustive()
    }
}

/// A Rust argument type and the SQL types coerced to it.
trait SqlArg: Copy + 'static {
    fn coercion() -> Coercion;
    /// The rows of `array` (already coerced to this type), `None` for NULL.
    fn rows<'a>(array: &'a ArrayRef, udf: &str) -> Result<impl Iterator<Item = Option<Self>> + 'a>;
}

impl SqlArg for i64 {
    fn coercion() -> Coercion {
        Coercion::new_implicit(
            TypeSignatureClass::Native(logical_int64()),
            vec![TypeSignatureClass::Integer],
            NativeType::Int64,
        )
    }

    fn rows<'a>(array: &'a ArrayRef, udf: &str) -> Result<impl Iterator<Item = Option<Self>> + 'a> {
        let values = array
            .as_primitive_opt::<Int64Type>()
            .ok_or_else(|| not_coerced(udf, "Int64", array.data_type()))?;
        Ok(values.iter())
    }
}

impl SqlArg for f64 {
    fn coercion() -> Coercion {
        Coercion::new_implicit(
            TypeSignatureClass::Native(logical_float64()),
            vec![TypeSignatureClass::Numeric],
            NativeType::Float64,
        )
    }

    fn rows<'a>(array: &'a ArrayRef, udf: &str) -> Result<impl Iterator<Item = Option<Self>> + 'a> {
        let values = array
            .as_primitive_opt::<Float64Type>()
            .ok_or_else(|| not_coerced(udf, "Float64", array.data_type()))?;
        Ok(values.iter())
    }
}

impl SqlArg for bool {
    fn coercion() -> Coercion {
        Coercion::new_exact(TypeSignatureClass::Native(logical_boolean()))
    }

    fn rows<'a>(array: &'a ArrayRef, udf: &str) -> Result<impl Iterator<Item = Option<Self>> + 'a> {
        let values = array
            .as_boolean_opt()
            .ok_or_else(|| not_coerced(udf, "Boolean", array.data_type()))?;
        Ok(values.iter())
    }
}

/// The signature guarantees the coerced type; anything else is a bug.
fn not_coerced(udf: &str, expected: &str, actual: &DataType) -> datafusion::error::DataFusionError {
    internal_datafusion_err!("{udf}: argument should have been coerced to {expected}, got {actual}")
}

/// A plain function's result as a nullable `Float64` value.
trait SqlResult: 'static {
    fn into_value(self) -> Option<f64>;
}

impl SqlResult for f64 {
    fn into_value(self) -> Option<f64> {
        Some(self)
    }
}

impl SqlResult for Option<f64> {
    fn into_value(self) -> Option<f64> {
        self
    }
}
