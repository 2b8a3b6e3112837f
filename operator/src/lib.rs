//! Sorcha operator: reconciles `SorchaNetwork` and `SorchaPeer` custom
//! resources into StatefulSets, Services, bootstrap config, mTLS PKI,
//! disruption budgets and network policies, and aggregates the status each
//! peer writes into its own `SorchaPeer`.
//!
//! Layout: `crd` (types), `resources` (pure builders: spec → desired
//! objects), `pki` (CA, peer certificates, rotation), `rollout` (the
//! health-gated partition stepper), `status` (aggregation and conditions),
//! `controller` (reconcile, error policy, run), `metrics`.
#![forbid(unsafe_code)]

pub mod controller;
pub mod crd;
pub mod duration;
pub mod error;
pub mod metrics;
pub mod pki;
pub mod pods;
pub mod resources;
pub mod rollout;
pub mod status;

pub use error::{Error, Result};

/// Field manager of every server-side apply the operator makes.
pub const FIELD_MANAGER: &str = "sorcha-operator";
