//! Loads each plugin that `./build` wrote to `target/plugins/` and calls its
//! `__run` the way Arroyo's UDF host does: Arrow C-data arrays in, one array
//! out. Run `./build` first (it runs this test itself at the end).

use std::path::PathBuf;
use std::sync::Arc;

use arroyo_udf_plugin::arrow::array::{
    Array, ArrayRef, Float64Array, Int64Array, StringArray, make_array,
};
use arroyo_udf_plugin::arrow::ffi::from_ffi;
use arroyo_udf_plugin::{FfiArraySchema, FfiArrays, RunResult};

/// The signature `#[udf]` gives `__run` (arroyo-udf-macros 0.2).
type Run = unsafe extern "C-unwind" fn(FfiArrays) -> RunResult;

/// Calls the `__run` of `target/plugins/<name>.so` on `args`, returning
/// its Float64 rows.
fn call(name: &str, args: Vec<ArrayRef>) -> Vec<Option<f64>> {
    call_with(name, args, |result| {
        let rows = result.as_any().downcast_ref::<Float64Array>();
        rows.expect("this plugin returns Float64").iter().collect()
    })
}

/// Calls the `__run` of `target/plugins/<name>.so` on `args` and reads the
/// result with `copy`: the rows are copied out before the library is
/// unloaded, since the returned Arrow buffers are released by code inside it.
fn call_with<T>(name: &str, args: Vec<ArrayRef>, copy: impl Fn(&ArrayRef) -> T) -> T {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("target/plugins")
        .join(format!("{name}.so"));
    assert!(path.exists(), "{} is missing: run ./build", path.display());
    // SAFETY: the file is one of our plugins; loading it runs no initialisers
    // beyond Rust's own, and `__run` has the signature above.
    let library = unsafe { libloading::Library::new(&path) }.expect("plugin loads");
    let run = unsafe { library.get::<Run>(b"__run") }.expect("plugin exports __run");
    let args = FfiArrays::from_vec(args.iter().map(|array| array.to_data()).collect());
    // SAFETY: the plugin takes ownership of `args` and returns an owned array.
    match unsafe { run(args) } {
        RunResult::Ok(FfiArraySchema(array, schema)) => {
            // SAFETY: `array` and `schema` come straight from the plugin's export.
            let data = unsafe { from_ffi(array, &schema) }.expect("valid Arrow C data");
            copy(&make_array(data))
        }
        RunResult::Err => panic!("{name} panicked inside the plugin"),
    }
}

fn floats(values: &[Option<f64>]) -> ArrayRef {
    Arc::new(Float64Array::from(values.to_vec()))
}

fn ints(values: &[Option<i64>]) -> ArrayRef {
    Arc::new(Int64Array::from(values.to_vec()))
}

/// Compares with 1e-9 slack; `None` is a NULL row.
fn assert_rows(name: &str, actual: &[Option<f64>], expected: &[Option<f64>]) {
    assert_eq!(actual.len(), expected.len(), "{name}: row count");
    for (row, (got, want)) in actual.iter().zip(expected).enumerate() {
        match (got, want) {
            (Some(got), Some(want)) => {
                assert!(
                    (got - want).abs() < 1e-9,
                    "{name} row {row}: {got} != {want}"
                )
            }
            _ => assert_eq!(got, want, "{name} row {row}"),
        }
    }
}

#[test]
fn interaction_rate_plugin() {
    let out = call(
        "interaction_rate",
        vec![
            ints(&[Some(30), Some(5), None, Some(7)]),
            ints(&[Some(120), Some(0), Some(3), Some(3)]),
        ],
    );
    assert_rows(
        "interaction_rate",
        &out,
        &[Some(0.25), None, None, Some(7.0 / 3.0)],
    );
}

#[test]
fn startup_score_plugin() {
    let out = call(
        "startup_score",
        vec![floats(&[Some(2000.0), Some(8000.0), None, Some(1500.0)])],
    );
    assert_rows(
        "startup_score",
        &out,
        &[Some(80.0), Some(50.0), None, Some(84.210_526_315_789_48)],
    );
}

#[test]
fn smoothness_score_plugin() {
    let out = call(
        "smoothness_score",
        vec![
            ints(&[Some(0), Some(2), Some(4), None]),
            floats(&[Some(0.0), Some(0.0), Some(0.05), Some(0.1)]),
        ],
    );
    assert_rows(
        "smoothness_score",
        &out,
        &[
            Some(100.0),
            Some(85.355_339_059_327_38),
            Some(52.687_212_760_629_56),
            None,
        ],
    );
}

#[test]
fn quality_score_plugin() {
    let out = call(
        "quality_score",
        vec![
            floats(&[Some(0.0), Some(50.0), Some(100.0)]),
            floats(&[Some(0.0), Some(50.0), Some(20.0)]),
        ],
    );
    assert_rows(
        "quality_score",
        &out,
        &[
            Some(100.0),
            Some(84.789_370_408_791_58),
            Some(89.978_448_989_872_1),
        ],
    );
}

#[test]
fn success_score_plugin_takes_integer_flags() {
    let out = call(
        "success_score",
        vec![
            ints(&[Some(1), Some(0), Some(0), Some(1), None]),
            ints(&[Some(0), Some(0), Some(1), Some(1), Some(0)]),
        ],
    );
    assert_rows(
        "success_score",
        &out,
        &[Some(100.0), Some(50.0), Some(0.0), Some(0.0), None],
    );
}

#[test]
fn playback_score_plugin() {
    let out = call(
        "playback_score",
        vec![floats(&[
            Some(250.0),
            Some(10_150.0),
            Some(2_270.0),
            Some(30_000.0),
            None,
        ])],
    );
    assert_rows(
        "playback_score",
        &out,
        &[Some(100.0), Some(25.0), Some(81.0), Some(0.0), None],
    );
}

#[test]
fn distinct_key_plugin_gives_the_keys_datafusion_gives() {
    let values: ArrayRef = Arc::new(StringArray::from(vec![Some("a"), None, Some("弹幕")]));
    let out = call_with("distinct_key", vec![values], |result| {
        let rows = result.as_any().downcast_ref::<Int64Array>();
        rows.expect("distinct_key returns Int64")
            .iter()
            .collect::<Vec<_>>()
    });
    // The values udfs/tests/sql/keys.slt pins for the DataFusion UDF.
    assert_eq!(
        out,
        [
            Some(-1_817_709_641_818_812_897),
            None,
            Some(5_434_772_321_327_425_138)
        ]
    );
}
