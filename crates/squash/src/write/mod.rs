//! Writing: outputs parsed and guarded (`output`), the output containers (OCI layouts, archives
//! on disk, archives on a stream, a registry's repository), each written under temporary names
//! (or untagged) and committed at the end (`target`), the new config and manifest
//! (`documents`), and the execution of a plan for one image (`execute`) or a whole index
//! (`image_index`).
//!
//! The files, lowest first: `output`, `lock` (directory locks and temporaries), `container`
//! (what the containers share), `space` (room for an output), `layout`, `archive`, `stream`,
//! `registry`, `staged` (an output written beside its destination or pushed by digest, put in
//! place once checked), `target`, `outcome`, `documents`, `beside` (work on a thread beside the
//! writer), `execute`, `image_index`.

pub(crate) mod archive;
pub(crate) mod beside;
pub(crate) mod container;
pub(crate) mod documents;
pub(crate) mod execute;
pub(crate) mod image_index;
pub(crate) mod layout;
pub(crate) mod lock;
pub(crate) mod outcome;
pub(crate) mod output;
#[cfg(feature = "registry")]
pub(crate) mod registry;
pub(crate) mod space;
pub(crate) mod staged;
pub(crate) mod stream;
pub(crate) mod target;
