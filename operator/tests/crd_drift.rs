//! The committed `crds/` must be exactly what the types generate.
use std::path::Path;

#[test]
fn committed_crds_match_generated() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../crds");
    for (file, generated) in sorcha_operator::crd::crd_yaml() {
        let path = dir.join(file);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is out of date with the Rust types; regenerate with \
             `cargo run -p sorcha-operator --bin crdgen -- --out crds` and commit it",
            path.display()
        );
    }
    let mut on_disk: Vec<_> = std::fs::read_dir(&dir)
        .expect("crds/ exists")
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let mut expected: Vec<_> = sorcha_operator::crd::crd_yaml()
        .into_iter()
        .map(|(f, _)| f.to_owned())
        .collect();
    expected.sort();
    assert_eq!(on_disk, expected, "crds/ holds files crdgen does not write");
}
