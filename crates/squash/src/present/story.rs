//! The words of a report's stories and causes, shared by the text, Markdown and HTML views: one
//! event of a path's story, a cause's headline, kind and the steps it names, a wasted row's note.

use crate::report::model::{Action, Cause, CauseLayer, PathEvent, WastedPath};
use crate::units::human;

/// One event of a path's story: `layer 4 deleted: whiteout`, `layer 7 metadata: mode 0644 ->
/// 0640`, with the number of files for a group's event.
pub fn event_words(event: &PathEvent) -> String {
    let mut words = format!("layer {} {}", event.layer, event.action.word());
    if event.files > 1 {
        words.push_str(&format!(" ({} files)", event.files));
    }
    if let Some(how) = &event.how {
        words.push_str(&format!(": {how}"));
    }
    if event.action == Action::Metadata {
        if event.changed.is_empty() {
            words.push_str(": the same file stored again");
        } else {
            let changes: Vec<String> = event
                .changed
                .iter()
                .map(|c| format!("{} {} -> {}", c.field, c.from, c.to))
                .collect();
            words.push_str(&format!(": {}", changes.join(", ")));
        }
    }
    words
}

/// The command of the history step an event of a path's story happened in, when the history
/// names one (a `docker import`'s base has only a comment): a view leaves it out otherwise.
pub fn event_step(event: &PathEvent) -> Option<&str> {
    event.created_by.as_deref().filter(|c| !c.trim().is_empty())
}

/// A cause's headline: `120.0 MB in 3 files, deleted by a later step: stored by layer 2,
/// made waste by layer 4`.
pub fn cause_headline(cause: &Cause) -> String {
    let files = if cause.files == 1 { "1 file".into() } else { format!("{} files", cause.files) };
    let kind = cause_kind(cause);
    format!(
        "{} in {files}, {kind}: stored by layer {}, made waste by layer {}{}",
        human(cause.bytes),
        cause.stored_by.layer,
        cause.wasted_by.layer,
        if cause.base { " (in the base: not reclaimed by this squash)" } else { "" }
    )
}

/// What kind of waste a cause is, in words: `apt package manager lists and caches`, `stored
/// again unchanged` for a metadata-only cause in which no header changed.
pub fn cause_kind(cause: &Cause) -> String {
    let words = if cause.unchanged { "stored again unchanged" } else { cause.kind.words() };
    match &cause.tool {
        Some(tool) => format!("{tool} {words}"),
        None => words.to_string(),
    }
}

/// The command of the history step a cause names, or that the history names none (a step with
/// only a comment, as `docker import` writes it, or no step for the layer).
pub fn cause_step(layer: &CauseLayer) -> &str {
    layer.created_by.as_deref().filter(|c| !c.trim().is_empty()).unwrap_or(NO_COMMAND)
}

/// What a view says of a layer whose history step names no command.
const NO_COMMAND: &str = "(the image's history names no command)";

/// The squash a cause suggests, with what it reclaims.
pub fn cause_squash(cause: &Cause) -> String {
    format!("{}   (reclaims {})", cause.squash.command, human(cause.squash.reclaims))
}

/// A wasted row's note: `2 copies`, `1,111 files`, and whether the base holds it.
pub fn row_note(row: &WastedPath) -> String {
    let mut note = match (row.files, row.copies) {
        (files, _) if files > 1 => format!("{files} files"),
        (_, 1) => "1 copy".to_string(),
        (_, copies) => format!("{copies} copies"),
    };
    if row.base {
        note.push_str("; in the base: not reclaimed by this squash");
    }
    note
}
