//! The crate allows `unsafe_code` only because UniFFI's macros expand to FFI functions here;
//! this keeps hand-written `unsafe` out of `src/`, except for the one documented block in
//! `src/raw.rs` that reads platform pixel memory by address.

#[test]
fn no_hand_written_unsafe() {
    let src = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut offenders = Vec::new();
    let mut dirs = vec![src];
    while let Some(d) = dirs.pop() {
        for e in std::fs::read_dir(&d).expect("src is readable") {
            let p = e.expect("entry").path();
            if p.is_dir() {
                dirs.push(p);
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).expect("source is UTF-8");
                let uses = text
                    .split(|c: char| !c.is_alphanumeric() && c != '_')
                    .filter(|w| *w == "unsafe")
                    .count();
                let code_uses = text.matches("unsafe {").count();
                let allowed = p.file_name().is_some_and(|n| n == "raw.rs");
                if allowed {
                    assert_eq!(code_uses, 1, "src/raw.rs has exactly one unsafe block");
                    assert!(
                        text.contains("// SAFETY:"),
                        "the unsafe block in src/raw.rs states its safety argument"
                    );
                } else if uses > 0 {
                    offenders.push(p.display().to_string());
                }
            }
        }
    }
    assert!(offenders.is_empty(), "hand-written unsafe in {offenders:?}");
}
