//! Links `livepulse-udfs` with exactly one `arroyo-*` feature into a cdylib.
//!
//! The exported `__run` symbol comes from the dependency; this crate only
//! forces it to be linked. Build with `./build`, not by hand.
#![forbid(unsafe_code)]

// Without a use, rustc would not link the dependency and `__run` would be lost.
use livepulse_udfs as _;
