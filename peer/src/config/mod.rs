//! Configuration: schema, loading (YAML file + environment), validation.
//!
//! [`load`] starts from [`PeerServiceConfig::default`], merges the YAML
//! file's `PeerService:` section over it (keys case-insensitive), applies
//! `SORCHA__SECTION__KEY` environment overrides, deserializes and
//! [validates](PeerServiceConfig::validate). Every problem found is reported
//! at once as [`Error::Config`](crate::Error::Config).
mod addr;
pub mod duration;
mod load;
mod merge;
mod password;
mod schema;
mod validate;

pub use load::{load, load_from, to_yaml};
pub use password::resolve_password;
pub use schema::*;
pub use validate::{MAX_TRANSACTION_SIZE_LIMIT, MIN_REFRESH_INTERVAL};
