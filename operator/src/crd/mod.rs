//! Custom resource types, group `sorcha.dev`, version `v1alpha1`.
mod network;
mod peer;
mod settings;
mod status;

pub use network::*;
pub use peer::*;
pub use settings::*;
pub use status::*;

/// Annotation that stops reconciliation of one object.
pub const PAUSED_ANNOTATION: &str = "sorcha.dev/paused";

/// The CRDs as YAML documents, in a stable order: what `crdgen` writes.
pub fn crd_yaml() -> Vec<(&'static str, String)> {
    use kube::CustomResourceExt;
    vec![
        (
            "sorchanetworks.sorcha.dev.yaml",
            serde_norway::to_string(&SorchaNetwork::crd()).expect("CRD serializes"),
        ),
        (
            "sorchapeers.sorcha.dev.yaml",
            serde_norway::to_string(&SorchaPeer::crd()).expect("CRD serializes"),
        ),
    ]
}
