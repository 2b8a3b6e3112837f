//! The committed `crds/`, and the Helm chart's copy of it, must be exactly
//! what the types generate.
use std::path::Path;

const REGENERATE: &str = "cargo run -p sorcha-operator --bin crdgen -- \
                          --out crds --out charts/sorcha-operator/files/crds";

#[test]
fn committed_crds_match_generated() {
    assert_dir_matches("../crds");
}

#[test]
fn chart_copy_of_crds_matches_generated() {
    assert_dir_matches("../charts/sorcha-operator/files/crds");
}

fn assert_dir_matches(rel: &str) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(rel);
    for (file, generated) in sorcha_operator::crd::crd_yaml() {
        let path = dir.join(file);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "{} is out of date with the Rust types; regenerate with `{REGENERATE}` \
             and commit it",
            path.display()
        );
    }
    let mut on_disk: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}; run `{REGENERATE}`", dir.display()))
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    on_disk.sort();
    let mut expected: Vec<_> = sorcha_operator::crd::crd_yaml()
        .into_iter()
        .map(|(f, _)| f.to_owned())
        .collect();
    expected.sort();
    assert_eq!(
        on_disk,
        expected,
        "{} holds files crdgen does not write",
        dir.display()
    );
}
