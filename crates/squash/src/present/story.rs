//! The words of a report's stories and causes, shared by the text, Markdown and HTML views: one
//! event of a path's story, a cause's headline, kind and the steps it names, a wasted row's note.

use std::borrow::Cow;

use crate::report::model::{Action, Cause, CauseLayer, PathEvent, WastedPath};
use crate::units::human;

/// A history step's command as a person reads it, the way the Dockerfile said it: the legacy
/// builder's and buildah's `/bin/sh -c #(nop) COPY …` becomes `COPY …`, their `/bin/sh -c
/// apt-get …` (with its build arguments, `|2 A=1 B=2 /bin/sh -c …`, left out) becomes `RUN
/// apt-get …`, BuildKit's `RUN /bin/sh -c … # buildkit` becomes `RUN …` (its other steps lose
/// the `# buildkit` comment), and the content digest of a legacy `COPY file:…`/`dir:…`/
/// `multi:…` is cut to 12 digits, so that the destination after it shows in a narrow column;
/// line breaks and tabs become spaces. The JSON keeps the step as the image has it.
pub fn step_text(created_by: &str) -> Cow<'_, str> {
    let step = created_by.trim();
    let step = step.strip_suffix("# buildkit").map_or(step, str::trim_end);
    let (run, step) = match step.strip_prefix("RUN ") {
        Some(rest) => (true, rest.trim_start()),
        None => (false, step),
    };
    // Build arguments before the shell: `|2 A=1 B=2 /bin/sh -c …`.
    let (run, step) = match step.strip_prefix('|').and_then(|r| r.split_once(" /bin/sh -c ")) {
        Some((_, command)) => (true, command),
        None => (run, step),
    };
    let mut step: Cow<'_, str> = if let Some(rest) = step.strip_prefix("/bin/sh -c #(nop)") {
        rest.trim_start().into()
    } else if let Some(command) = step.strip_prefix("/bin/sh -c ") {
        format!("RUN {}", command.trim_start()).into()
    } else if run {
        format!("RUN {}", step.trim_start()).into()
    } else {
        step.into()
    };
    // A heredoc's lines (BuildKit keeps them) would break a table's row.
    if step.contains(['\n', '\r', '\t']) {
        step = step.replace(['\n', '\r', '\t'], " ").into();
    }
    const SOURCES: [&str; 3] = ["file:", "dir:", "multi:"];
    if !SOURCES.iter().any(|kind| step.contains(kind)) {
        return step;
    }
    let mut out = String::with_capacity(step.len());
    let mut rest: &str = &step;
    while let Some((at, len)) =
        SOURCES.iter().filter_map(|kind| rest.find(kind).map(|at| (at, kind.len()))).min()
    {
        let digits_from = at + len;
        let hex = rest[digits_from..].bytes().take_while(u8::is_ascii_hexdigit).count();
        if hex == 64 {
            out.push_str(&rest[..digits_from + 12]);
            out.push('…');
            rest = &rest[digits_from + 64..];
        } else {
            out.push_str(&rest[..digits_from]);
            rest = &rest[digits_from..];
        }
    }
    out.push_str(rest);
    out.into()
}

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
pub fn event_step(event: &PathEvent) -> Option<Cow<'_, str>> {
    named_step(event.created_by.as_deref())
}

/// A history step as [`step_text`] shows it, unless the history names no command.
fn named_step(created_by: Option<&str>) -> Option<Cow<'_, str>> {
    created_by.filter(|c| !c.trim().is_empty()).map(step_text)
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
pub fn cause_step(layer: &CauseLayer) -> Cow<'_, str> {
    named_step(layer.created_by.as_deref()).unwrap_or(NO_COMMAND.into())
}

/// A layer's history step as [`step_text`] shows it; empty when the history names none.
pub fn layer_step(created_by: Option<&str>) -> Cow<'_, str> {
    named_step(created_by).unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::step_text;

    #[test]
    fn steps_read_as_the_dockerfile_said_them() {
        let digest = "9717f69450e15d603ec00804ea79092474fc92f91538534baaa500b30bf11c2d";
        let cases = [
            (
                format!("/bin/sh -c #(nop) COPY file:{digest} in /opt/big "),
                "COPY file:9717f69450e1… in /opt/big".to_string(),
            ),
            (
                format!("/bin/sh -c #(nop) ADD multi:{digest} in /app/"),
                "ADD multi:9717f69450e1… in /app/".into(),
            ),
            ("/bin/sh -c #(nop)  CMD [\"sh\"]".into(), "CMD [\"sh\"]".into()),
            ("/bin/sh -c apt-get update".into(), "RUN apt-get update".into()),
            ("|2 A=1 B=x y /bin/sh -c make".into(), "RUN make".into()),
            ("RUN /bin/sh -c make install # buildkit".into(), "RUN make install".into()),
            ("COPY app.tar.gz /tmp/ # buildkit".into(), "COPY app.tar.gz /tmp/".into()),
            ("RUN |1 A=b /bin/sh -c make # buildkit".into(), "RUN make".into()),
            ("RUN make # buildkit".into(), "RUN make".into()),
            (
                "RUN /bin/sh -c <<EOF\nmake\n\tinstall\nEOF # buildkit".into(),
                "RUN <<EOF make  install EOF".into(),
            ),
            ("RUN apk add curl".into(), "RUN apk add curl".into()),
            ("COPY file:abc in /x".into(), "COPY file:abc in /x".into()),
        ];
        for (step, shown) in cases {
            assert_eq!(step_text(&step), shown, "{step}");
        }
    }
}
