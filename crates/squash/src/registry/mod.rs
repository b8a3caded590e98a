//! Registries, as the OCI distribution spec defines them: references
//! (`docker://HOST/REPO:TAG`), how they are reached (credentials, TLS, retries), what a run moved
//! through them, and, with the `registry` feature, the HTTP client and one repository seen as a
//! store of blobs and documents. The read stage opens images from a repository; the write stage
//! pushes to one.

#[cfg(feature = "registry")]
pub(crate) mod auth;
#[cfg(feature = "registry")]
pub(crate) mod client;
pub(crate) mod options;
pub(crate) mod reference;
#[cfg(feature = "registry")]
pub(crate) mod repository;
pub(crate) mod transfer;
