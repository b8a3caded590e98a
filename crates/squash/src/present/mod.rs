//! Presentation helpers for programs that show squash's figures to people: sizes as text and
//! back, and the report as an SVG chart, Markdown for a pull request, or an HTML page; and the
//! JSON documents of the command line as types ([`document`]); the words of stories and causes
//! ([`story`]).

pub mod document;
pub(crate) mod pages;
pub mod story;
#[cfg(feature = "svg")]
pub(crate) mod svg;

pub use crate::units::{human, parse_size};
#[cfg(feature = "svg")]
pub use pages::report_html;
pub use pages::report_markdown;
#[cfg(feature = "svg")]
pub use svg::report_svg;
