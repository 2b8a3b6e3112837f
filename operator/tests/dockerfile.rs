//! The image build cannot run here (no Docker daemon), so its inputs are
//! checked instead: every workspace member is copied into the build stage
//! and not excluded by .dockerignore, the build is locked and release, both
//! binaries land in a non-root runtime image.
mod tools;

use tools::{repo_root, yaml_docs};

fn workspace_members() -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join("Cargo.toml")).unwrap();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("members"))
        .expect("workspace members");
    let list = &line[line.find('[').unwrap()..];
    yaml_docs(list)[0]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn dockerfile_copies_every_member_and_builds_both_binaries_for_a_non_root_user() {
    let docker = std::fs::read_to_string(repo_root().join("Dockerfile")).unwrap();
    let ignore = std::fs::read_to_string(repo_root().join(".dockerignore")).unwrap();
    let members = workspace_members();
    assert!(members.contains(&"kind-tests".to_owned()), "{members:?}");
    for m in &members {
        assert!(
            docker.lines().any(|l| l.trim() == format!("COPY {m} {m}")),
            "the Dockerfile does not copy workspace member {m}"
        );
        assert!(
            !ignore.lines().any(|l| l.trim().trim_end_matches('/') == m),
            ".dockerignore excludes workspace member {m}"
        );
    }
    assert!(docker.contains("COPY Cargo.toml Cargo.lock ./"));
    assert!(docker.contains("cargo build --release --locked"));
    for bin in ["sorcha-peer", "sorcha-operator"] {
        assert!(docker.contains(&format!("--bin {bin}")), "{bin} is built");
        assert!(
            docker.contains(&format!("target/release/{bin}")),
            "{bin} is copied"
        );
    }
    assert_eq!(
        docker.matches("FROM ").count(),
        2,
        "multi-stage: build and runtime"
    );
    let user = docker
        .lines()
        .rfind(|l| l.starts_with("USER "))
        .expect("a USER line");
    assert!(!user.contains(" 0") && !user.contains("root"), "{user}");
    assert!(docker.contains("ENTRYPOINT [\"sorcha-peer\"]"));
    assert!(
        docker.contains("EXPOSE 5001 8080"),
        "peer and operator ports"
    );
    // The chart and operator run the same image by these names.
    let deploy = std::fs::read_to_string(
        repo_root().join("charts/sorcha-operator/templates/deployment.yaml"),
    )
    .unwrap();
    assert!(deploy.contains("command: [\"sorcha-operator\"]"));
}
