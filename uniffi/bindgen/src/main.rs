//! `uniffi-bindgen`: generates the Kotlin and Swift bindings of `platewatch-ffi`, e.g.
//! `cargo run -p platewatch-uniffi-bindgen -- generate --library target/debug/libplatewatch_ffi.so --language kotlin --out-dir OUT`.

fn main() {
    uniffi::uniffi_bindgen_main()
}
