//! Why each wasted byte is waste: the story of every wasted path (each layer that touched it and
//! what it did, metadata-only copies told apart by the data's fingerprint), the causes (waste
//! grouped by the layer that stored it and the layer that made it waste, with a kind, the
//! Dockerfile change that avoids it and the squash that reclaims it), and small files grouped
//! by directory.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use super::model::{
    Action, Cause, CauseKind, CauseLayer, FieldChange, PathEvent, ReportOptions, SquashFix,
    WastedPath, SMALL_FILE,
};
use crate::layer::entry::{EntryKind, EntryPath};
use crate::layer::layer_index::{EntryClass, EntryFacts, LayerIndex};
use crate::plan::changeset::range_plan::Fate;

/// What the story of an image needs: every layer's index (with facts), what the whole image's
/// changeset does to each entry, each layer's history step, and where the base ends.
pub(super) struct Story<'a> {
    pub indexes: &'a [LayerIndex],
    pub fates: &'a [Vec<Fate>],
    pub created_by: &'a [Option<String>],
    pub base_end: usize,
}

/// The causes, largest first, and the wasted-path rows, largest first (at most `top` of them).
pub(super) struct Told {
    pub causes: Vec<Cause>,
    pub rows: Vec<WastedPath>,
}

/// A copy of a path: its layer and entry.
type Copy = (usize, usize);

impl Story<'_> {
    /// Tells the story of every path of which some copy with data is dropped.
    pub fn tell(&self, how: &ReportOptions) -> Told {
        let copies = self.wasteful_copies();
        let markers = self.markers();
        let mut replacers: HashMap<usize, HashSet<Vec<u8>>> = HashMap::new();
        let mut arrivals: HashMap<usize, HashMap<(u64, [u8; 16]), usize>> = HashMap::new();
        let mut per_cause: BTreeMap<(usize, usize, CauseKind, Option<&'static str>), CauseSum> =
            BTreeMap::new();
        let mut rows = Vec::with_capacity(copies.len());
        for (path, list) in &copies {
            let events = self.events(path, list, &markers, &mut replacers);
            let mut row = WastedPath {
                path: path.display(),
                files: 1,
                copies: 0,
                reclaimable_bytes: 0,
                layers: Vec::new(),
                base: true,
                events,
            };
            for &(l, e) in list {
                let bytes = self.file_bytes(l, e);
                if bytes == 0 {
                    continue;
                }
                row.copies += 1;
                row.layers.push(l);
                let Some(by) = wasted_by(self.fates[l][e]) else { continue };
                row.reclaimable_bytes += bytes;
                row.base &= l < self.base_end;
                let (kind, tool, to) = self.kind(path, (l, e), &row.events, by, &mut arrivals);
                let sum = per_cause.entry((l, by, kind, tool)).or_default();
                sum.bytes += bytes;
                sum.files += 1;
                for event in row.events.iter().filter(|e| e.layer == by) {
                    sum.changed.extend(event.changed.iter().map(|c| c.field.clone()));
                }
                sum.paths.push((bytes, row.path.clone(), to));
                sum.paths.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
                sum.paths.truncate(3);
            }
            row.layers.dedup();
            if row.reclaimable_bytes > 0 {
                rows.push(row);
            }
        }
        let causes = self.causes(per_cause, &how.input, how.platform.as_deref());
        let mut rows = if how.group { group(rows, how.group_depth) } else { rows };
        rows.sort_by(|a, b| {
            b.reclaimable_bytes.cmp(&a.reclaimable_bytes).then_with(|| a.path.cmp(&b.path))
        });
        rows.truncate(how.top_paths);
        Told { causes, rows }
    }

    /// Every node entry at each path of which some copy with data is dropped, in layer order.
    fn wasteful_copies(&self) -> BTreeMap<EntryPath, Vec<Copy>> {
        let mut wasteful: BTreeMap<EntryPath, Vec<Copy>> = BTreeMap::new();
        for (l, index) in self.indexes.iter().enumerate() {
            for (e, fate) in self.fates[l].iter().enumerate() {
                if fate.is_dropped() && self.file_bytes(l, e) > 0 {
                    wasteful.entry(index.entries[e].path.clone()).or_default();
                }
            }
        }
        for (l, index) in self.indexes.iter().enumerate() {
            for (e, entry) in index.entries.iter().enumerate() {
                if matches!(entry.class, EntryClass::Node(_)) {
                    if let Some(list) = wasteful.get_mut(&entry.path) {
                        list.push((l, e));
                    }
                }
            }
        }
        wasteful
    }

    /// Every layer's whiteouts and opaque markers: path → what it is.
    fn markers(&self) -> Vec<HashMap<Vec<u8>, Marker>> {
        self.indexes
            .iter()
            .map(|index| {
                let mut found = HashMap::new();
                for entry in &index.entries {
                    match &entry.class {
                        EntryClass::Whiteout(target) => {
                            found.insert(target.as_bytes().to_vec(), Marker::Whiteout);
                        }
                        EntryClass::Opaque(dir) => {
                            found.entry(dir.as_bytes().to_vec()).or_insert(Marker::Opaque);
                        }
                        _ => {}
                    }
                }
                found
            })
            .collect()
    }

    /// The story of one path from its copies, in order.
    fn events(
        &self,
        path: &EntryPath,
        copies: &[Copy],
        markers: &[HashMap<Vec<u8>, Marker>],
        replacers: &mut HashMap<usize, HashSet<Vec<u8>>>,
    ) -> Vec<PathEvent> {
        let mut events = Vec::new();
        let mut live: Option<Copy> = None;
        for (i, &(l, e)) in copies.iter().enumerate() {
            let (action, changed) = match live {
                None => (Action::Added, Vec::new()),
                Some(before) => self.compare(before, (l, e)),
            };
            events.push(self.event(l, action, changed, None));
            live = Some((l, e));
            let next_layer = copies.get(i + 1).map(|c| c.0);
            match self.fates[l][e] {
                Fate::Deleted { by } => {
                    let how = deleted_how(path, &markers[by]);
                    events.push(self.event(by, Action::Deleted, Vec::new(), Some(how)));
                    live = None;
                }
                Fate::Replaced { by } if next_layer != Some(by) => {
                    let nodes = replacers.entry(by).or_insert_with(|| self.non_dirs(by));
                    let parent = path
                        .ancestors()
                        .filter(|a| !a.is_root())
                        .find(|a| nodes.contains(a.as_bytes()))
                        .map_or_else(|| "a parent".into(), |a| a.display());
                    let how = format!("parent {parent} replaced");
                    events.push(self.event(by, Action::Deleted, Vec::new(), Some(how)));
                    live = None;
                }
                _ => {}
            }
        }
        events
    }

    fn event(
        &self,
        layer: usize,
        action: Action,
        changed: Vec<FieldChange>,
        how: Option<String>,
    ) -> PathEvent {
        PathEvent {
            layer,
            action,
            created_by: self.created_by.get(layer).cloned().flatten(),
            changed,
            how,
            files: 1,
        }
    }

    /// The paths of layer `layer`'s entries that are not directories (what can replace a
    /// directory's contents).
    fn non_dirs(&self, layer: usize) -> HashSet<Vec<u8>> {
        self.indexes[layer]
            .entries
            .iter()
            .filter(|e| matches!(e.class, EntryClass::Node(k) if k != EntryKind::Dir))
            .map(|e| e.path.as_bytes().to_vec())
            .collect()
    }

    /// What the copy `after` is, against the copy `before` it replaces.
    fn compare(&self, before: Copy, after: Copy) -> (Action, Vec<FieldChange>) {
        let entry = |(l, e): Copy| &self.indexes[l].entries[e];
        let (old, new) = (entry(before), entry(after));
        if old.kind() != new.kind() {
            return (Action::TypeChanged, Vec::new());
        }
        let facts = |(l, e): Copy| self.indexes[l].facts.get(e).copied();
        match (facts(before), facts(after)) {
            (Some(a), Some(b))
                if old.kind() == Some(EntryKind::File)
                    && old.size == new.size
                    && old.stored_size == new.stored_size
                    && a.content == b.content =>
            {
                (Action::Metadata, changes(&a, &b))
            }
            _ => (Action::Replaced, Vec::new()),
        }
    }

    /// The kind of the waste the copy `copy` of `path` became in layer `by`; for package
    /// caches the tool, for a move the path the same content went to. `arrivals` holds, per
    /// layer asked about, its files by size and fingerprint.
    fn kind(
        &self,
        path: &EntryPath,
        copy: Copy,
        events: &[PathEvent],
        by: usize,
        arrivals: &mut HashMap<usize, HashMap<(u64, [u8; 16]), usize>>,
    ) -> (CauseKind, Option<&'static str>, Option<String>) {
        let text = path.display();
        if let Some(tool) = package_tool(&text) {
            return (CauseKind::PackageCache, Some(tool), None);
        }
        let action = events.iter().find(|e| e.layer == by).map(|e| e.action);
        match action {
            Some(Action::Metadata) => (CauseKind::MetadataOnly, None, None),
            Some(Action::Deleted) | None => {
                if let Some(to) = self.moved_to(path, copy, by, arrivals) {
                    (CauseKind::Moved, None, Some(to))
                } else if build_only(&text) {
                    (CauseKind::BuildOnly, None, None)
                } else {
                    (CauseKind::DeletedLater, None, None)
                }
            }
            _ => (CauseKind::Rewritten, None, None),
        }
    }

    /// Where the file `copy` at `path` went, if the layer `by` that deleted it added a file of
    /// the same size and content at another path: a `mv` (or a copy and a delete) in one step.
    fn moved_to(
        &self,
        path: &EntryPath,
        (l, e): Copy,
        by: usize,
        arrivals: &mut HashMap<usize, HashMap<(u64, [u8; 16]), usize>>,
    ) -> Option<String> {
        let entry = &self.indexes[l].entries[e];
        let facts = self.indexes[l].facts.get(e)?;
        if entry.kind() != Some(EntryKind::File) || entry.size == 0 {
            return None;
        }
        let layer = &self.indexes[by];
        let files = arrivals.entry(by).or_insert_with(|| {
            let mut files = HashMap::new();
            for (i, (entry, facts)) in layer.entries.iter().zip(&layer.facts).enumerate() {
                if entry.kind() == Some(EntryKind::File) && entry.size > 0 {
                    files.entry((entry.size, facts.content)).or_insert(i);
                }
            }
            files
        });
        let arrived = &layer.entries[*files.get(&(entry.size, facts.content))?];
        (arrived.path != *path).then(|| arrived.path.display())
    }

    /// The causes, largest first, each with its fix and the squash that reclaims it.
    fn causes(
        &self,
        per_cause: BTreeMap<(usize, usize, CauseKind, Option<&'static str>), CauseSum>,
        input: &str,
        platform: Option<&str>,
    ) -> Vec<Cause> {
        let platform = platform.map(|p| format!(" --platform {}", quoted(p))).unwrap_or_default();
        let pairs: Vec<(usize, usize, u64)> =
            per_cause.iter().map(|((s, w, _, _), sum)| (*s, *w, sum.bytes)).collect();
        let layer = |l: usize| CauseLayer { layer: l, created_by: self.created_by[l].clone() };
        let mut causes: Vec<Cause> = per_cause
            .into_iter()
            .map(|((stored, wasted, kind, tool), sum)| {
                let reclaims = pairs
                    .iter()
                    .filter(|(s, w, _)| *s >= stored && *w <= wasted)
                    .map(|(_, _, b)| *b)
                    .fold(0, u64::saturating_add);
                let moved_to = sum.paths.first().and_then(|(_, _, to)| to.clone());
                let paths: Vec<String> = sum.paths.into_iter().map(|(_, p, _)| p).collect();
                let base = stored < self.base_end;
                let unchanged = kind == CauseKind::MetadataOnly && sum.changed.is_empty();
                Cause {
                    stored_by: layer(stored),
                    wasted_by: layer(wasted),
                    bytes: sum.bytes,
                    files: sum.files,
                    kind,
                    tool: tool.map(str::to_string),
                    unchanged,
                    fix: if base {
                        base_fix(kind, unchanged, stored, wasted)
                    } else {
                        let copied = self.created_by[stored].as_deref().is_some_and(copies_in);
                        let stored_again = Stored { changed: &sum.changed, copied };
                        fix(kind, tool, &paths, moved_to.as_deref(), stored_again)
                    },
                    paths,
                    base,
                    squash: SquashFix {
                        first: stored,
                        last: wasted,
                        reclaims,
                        command: format!(
                            "squash {}{platform} --layers {stored}..{wasted} -o {}",
                            quoted(input),
                            quoted(&squashed_name(input))
                        ),
                    },
                }
            })
            .collect();
        causes.sort_by(|a, b| {
            b.bytes
                .cmp(&a.bytes)
                .then_with(|| a.stored_by.layer.cmp(&b.stored_by.layer))
                .then_with(|| a.wasted_by.layer.cmp(&b.wasted_by.layer))
        });
        causes
    }

    /// The file bytes of entry `entry` of layer `layer` (0 for a marker).
    fn file_bytes(&self, layer: usize, entry: usize) -> u64 {
        self.indexes[layer].entries[entry].file_bytes()
    }
}

/// What one cause adds up to while the paths are told.
#[derive(Default)]
struct CauseSum {
    bytes: u64,
    files: usize,
    /// The header fields of its files that the layer that made them waste changed.
    changed: BTreeSet<String>,
    /// The largest paths, each with where it was moved to (for a move).
    paths: Vec<(u64, String, Option<String>)>,
}

#[derive(Clone, Copy)]
enum Marker {
    Whiteout,
    Opaque,
}

/// The layer that made a dropped copy waste.
fn wasted_by(fate: Fate) -> Option<usize> {
    match fate {
        Fate::Replaced { by } | Fate::Deleted { by } => Some(by),
        _ => None,
    }
}

/// How a layer whose markers are `markers` deleted `path`.
fn deleted_how(path: &EntryPath, markers: &HashMap<Vec<u8>, Marker>) -> String {
    if let Some(Marker::Whiteout) = markers.get(path.as_bytes()) {
        return "whiteout".into();
    }
    let mut ancestors: Vec<EntryPath> = path.ancestors().collect();
    ancestors.reverse();
    for dir in ancestors {
        match markers.get(dir.as_bytes()) {
            Some(Marker::Whiteout) => return format!("parent {} deleted", dir.display()),
            Some(Marker::Opaque) => return format!("opaque directory {}", dir.display()),
            None => {}
        }
    }
    "whiteout".into()
}

/// The metadata fields that differ between two copies of the same content.
fn changes(a: &EntryFacts, b: &EntryFacts) -> Vec<FieldChange> {
    let mut changed = Vec::new();
    let mut push = |field: &str, from: String, to: String| {
        changed.push(FieldChange { field: field.into(), from, to });
    };
    if a.mode != b.mode {
        push("mode", format!("{:04o}", a.mode), format!("{:04o}", b.mode));
    }
    if a.uid != b.uid {
        push("uid", a.uid.to_string(), b.uid.to_string());
    }
    if a.gid != b.gid {
        push("gid", a.gid.to_string(), b.gid.to_string());
    }
    if a.mtime != b.mtime {
        let show = |m: Option<(i64, u32)>| match m {
            None => "unreadable".to_string(),
            Some((seconds, 0)) => utc(seconds),
            Some((seconds, nanos)) => utc(seconds).replace(" UTC", &format!(".{nanos:09} UTC")),
        };
        push("mtime", show(a.mtime), show(b.mtime));
    }
    if a.xattrs != b.xattrs {
        let state = |x: u64| if x == 0 { "none".to_string() } else { "set".to_string() };
        push("xattrs", state(a.xattrs), if b.xattrs == 0 { state(0) } else { "changed".into() });
    }
    changed
}

/// Seconds since the epoch as `2024-01-31 12:00:00 UTC`.
fn utc(seconds: i64) -> String {
    crate::units::date_time(seconds, ' ', " UTC")
}

/// The package manager whose lists or caches `path` lies in.
fn package_tool(path: &str) -> Option<&'static str> {
    let within = |dir: &str| path.starts_with(dir) || path.contains(&format!("/{dir}"));
    [
        ("apt", "var/lib/apt/lists/"),
        ("apt", "var/cache/apt/"),
        ("apk", "var/cache/apk/"),
        ("dnf", "var/cache/dnf/"),
        ("yum", "var/cache/yum/"),
        ("pip", ".cache/pip/"),
        ("npm", ".npm/"),
        ("yarn", ".cache/yarn/"),
        ("go", ".cache/go-build/"),
        ("go", "go/pkg/mod/"),
        ("cargo", ".cargo/registry/"),
        ("cargo", ".cargo/git/"),
    ]
    .into_iter()
    .find(|(_, dir)| within(dir))
    .map(|(tool, _)| tool)
}

/// Whether `path` is something only a build needs: compilers, headers, static libraries,
/// object files, build trees.
fn build_only(path: &str) -> bool {
    const DIRS: [&str; 8] = [
        "usr/lib/gcc/",
        "usr/libexec/gcc/",
        "usr/include/",
        "usr/local/include/",
        "usr/src/",
        "usr/lib/llvm",
        "target/release/",
        "target/debug/",
    ];
    const TOOLS: [&str; 8] = ["gcc", "g++", "cc1", "cc1plus", "clang", "ld", "as", "rustc"];
    let name = path.rsplit('/').next().unwrap_or(path);
    DIRS.iter().any(|d| path.starts_with(d) || path.contains(&format!("/{d}")))
        || path.split('/').any(|c| c == "build" || c == "node-gyp")
        || (path.starts_with("usr/bin/") || path.starts_with("usr/local/bin/"))
            && TOOLS.iter().any(|t| name == *t || name.ends_with(&format!("-{t}")))
        || name.ends_with(".a")
        || name.ends_with(".o")
}

/// What stores a file again exactly as it was (a metadata-only cause in which no header
/// changed): on overlayfs, anything that copies it into the step's layer.
const COPIED_UP: &str = "a hard link to it with `ln`, a `chmod` or `chown` to what it already \
                         has, or a program opening it for writing does that";

/// What to change for files a later step stored again with the same content and header but
/// their modification time.
const TIMES_FIX: &str = "the step stored the file again with the same content and only a new \
                         time (a `touch`, or a tool that rewrites the file, such as a `sed -i` \
                         that matched nothing): leave it alone after the step that creates it, \
                         or do that in the same RUN";

/// What to change for files a later step stored again with the same content (the header
/// fields in `changed`): none changed, what copies a file up; only the time, what touches or
/// rewrites it; otherwise the command that changes the mode, owner or extended attributes.
/// `copied`: whether a `COPY` or `ADD` stored them, which can set the mode and owner itself.
fn metadata_fix(changed: &BTreeSet<String>, copied: bool) -> String {
    if changed.is_empty() {
        return format!(
            "the step stored the file again as it was ({COPIED_UP}): leave it alone after the \
             step that creates it, or do that in the same RUN"
        );
    }
    if changed.iter().all(|f| f == "mtime") {
        return TIMES_FIX.into();
    }
    let mode = changed.contains("mode");
    let owner = changed.contains("uid") || changed.contains("gid");
    let (what, tools, flags) = match (mode, owner) {
        (true, true) => ("mode and owner", "chmod and chown", "`COPY --chmod=… --chown=…`"),
        (true, false) => ("mode", "chmod", "`COPY --chmod=…`"),
        (false, true) => ("owner", "chown", "`COPY --chown=…`"),
        (false, false) => {
            return "set them in the same RUN that creates the file: a later `setcap` or \
                    `setfattr` stores the whole file again for its extended attributes"
                .into()
        }
    };
    if copied {
        format!(
            "set the {what} as the file is added ({flags}): a later {tools} stores the whole \
             file again"
        )
    } else {
        format!(
            "{tools} it in the same RUN that creates it: a later {tools} stores the whole file \
             again"
        )
    }
}

/// What to change for a cause of `kind` whose bytes the base image's layer `stored` holds and
/// layer `wasted` made waste (`unchanged`: stored again exactly as they were): the steps that
/// created them are the base's, not the Dockerfile's.
fn base_fix(kind: CauseKind, unchanged: bool, stored: usize, wasted: usize) -> String {
    let squash = format!(
        "or squash into the base (`--layers {stored}..{wasted}`), which stops sharing the base \
         with other images"
    );
    match kind {
        CauseKind::MetadataOnly if unchanged => format!(
            "the step stored the base image's file again as it was ({COPIED_UP}): leave it \
             alone, {squash}"
        ),
        CauseKind::MetadataOnly | CauseKind::Rewritten => format!(
            "the base image's copy is stored again: start from a base image that already holds \
             it as this step leaves it (a newer tag, or a base built with this step), {squash}"
        ),
        _ => format!(
            "the base image holds it and a later step only hides it: start from a base image \
             without it (a slim variant, or one built without it), {squash}"
        ),
    }
}

/// Whether the history step `created_by` is a `COPY` or `ADD` (as BuildKit, the legacy builder,
/// buildah and kaniko write it), whose files no `RUN` can delete from its layer.
fn copies_in(created_by: &str) -> bool {
    let step = created_by.trim_start();
    let step = step.strip_prefix("/bin/sh -c #(nop)").unwrap_or(step).trim_start();
    step.starts_with("COPY ") || step.starts_with("ADD ")
}

/// How a cause's files were stored: the header fields the layer that made them waste changed,
/// and whether a `COPY` or `ADD` stored them.
#[derive(Clone, Copy)]
struct Stored<'a> {
    changed: &'a BTreeSet<String>,
    copied: bool,
}

/// What to change in the Dockerfile for a cause of `kind`; `moved_to`: where the largest of
/// its `paths` went, for a move; `stored`: how they were stored. Backticks in the text enclose
/// code and come in pairs: a path's own backticks are written as `'`, so that the Markdown and
/// HTML views can set the code apart.
fn fix(
    kind: CauseKind,
    tool: Option<&str>,
    paths: &[String],
    moved_to: Option<&str>,
    stored: Stored<'_>,
) -> String {
    let first = paths.first().map_or("it".into(), |p| p.replace('`', "'"));
    let moved_to = moved_to.map(|p| p.replace('`', "'"));
    match kind {
        CauseKind::DeletedLater if stored.copied => format!(
            "a COPY or ADD stored it, and no later step can take it out of that layer: use it \
             without storing it (`RUN --mount=type=bind,source=…,target=/{first} …`), or copy \
             it into a build stage and COPY --from that stage only what is needed; if nothing \
             needs it, leave it out with .dockerignore"
        ),
        CauseKind::Moved => format!(
            "create it where it ends up (`COPY`, or write it straight to /{}), or move it in \
             the same RUN that creates it: a later `mv` stores the whole file again at its new \
             path",
            moved_to.unwrap_or(first)
        ),
        CauseKind::DeletedLater => format!(
            "delete it in the same RUN that creates it (`… && rm -rf /{first}`): a later step \
             only hides it"
        ),
        CauseKind::BuildOnly => "build in a separate stage and COPY --from it only what runs \
                                 (a multi-stage build): compilers, headers and build trees \
                                 then never reach the image"
            .into(),
        CauseKind::MetadataOnly => metadata_fix(stored.changed, stored.copied),
        CauseKind::Rewritten => "write the file once, in its final form: every step that \
                                 writes it again stores another copy"
            .into(),
        CauseKind::PackageCache => match tool.unwrap_or("") {
            "apt" => "clean up in the same RUN: `apt-get update && apt-get install -y … && rm \
                      -rf /var/lib/apt/lists/*`"
                .into(),
            "apk" => "`apk add --no-cache …` (no index is stored)".into(),
            "dnf" => "`dnf install -y … && dnf clean all` in one RUN".into(),
            "yum" => {
                "`yum install -y … && yum clean all && rm -rf /var/cache/yum` in one RUN".into()
            }
            "pip" => "`pip install --no-cache-dir …` (or PIP_NO_CACHE_DIR=1)".into(),
            "npm" => "`npm ci && npm cache clean --force` in one RUN".into(),
            "yarn" => "`yarn install && yarn cache clean` in one RUN".into(),
            "go" => "build in a separate stage, or `go clean -cache -modcache` in the RUN that \
                     builds"
                .into(),
            _ => "build in a separate stage, or remove `$CARGO_HOME/registry` in the RUN that \
                  builds"
                .into(),
        },
    }
}

/// `s`, quoted for a POSIX shell when it needs it.
fn quoted(s: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "-_./:@+=,%".contains(c);
    if !s.is_empty() && s.chars().all(plain) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// An output name beside `input`: `app.tar` → `app-squashed.tar` (`app.tar.xz` →
/// `app-squashed.tar`: xz and bzip2 are read, not written), `oci:dir:tag` →
/// `oci:dir:tag-squashed`, `docker://host/repo:tag` → `docker://host/repo:tag-squashed`, `-`
/// → `-`.
pub(crate) fn squashed_name(input: &str) -> String {
    if input == "-" {
        return "-".into();
    }
    if let Some(rest) = input.strip_prefix("docker://") {
        let rest = rest.split('@').next().unwrap_or(rest);
        let tail = rest.rsplit('/').next().unwrap_or(rest);
        return if tail.contains(':') {
            format!("docker://{rest}-squashed")
        } else {
            format!("docker://{rest}:squashed")
        };
    }
    if let Some(rest) = input.strip_prefix("oci:") {
        return if rest.contains(':') {
            format!("{input}-squashed")
        } else {
            format!("{input}:squashed")
        };
    }
    for prefix in ["oci-archive:", "docker-archive:"] {
        if let Some(rest) = input.strip_prefix(prefix) {
            // The path is renamed; a tag stays, a selector (`@N`) chose what was read.
            return match rest.split_once(':') {
                Some((path, tag)) if !tag.starts_with('@') => {
                    format!("{prefix}{}:{tag}", squashed_name(path))
                }
                Some((path, _)) => format!("{prefix}{}", squashed_name(path)),
                None => format!("{prefix}{}", squashed_name(rest)),
            };
        }
    }
    for ext in [".tar.gz", ".tar.zst", ".tgz", ".tar"] {
        if let Some(stem) = input.strip_suffix(ext) {
            return format!("{stem}-squashed{ext}");
        }
    }
    // Read, not written: the squashed archive is a plain tar.
    for ext in [".tar.xz", ".txz", ".tar.bz2", ".tbz2"] {
        if let Some(stem) = input.strip_suffix(ext) {
            return format!("{stem}-squashed.tar");
        }
    }
    format!("{input}-squashed")
}

/// Small rows grouped by their directory at `depth` (or their parent, if shallower); a group
/// of one file stays a path.
fn group(rows: Vec<WastedPath>, depth: usize) -> Vec<WastedPath> {
    let mut out = Vec::new();
    let mut groups: BTreeMap<String, Vec<WastedPath>> = BTreeMap::new();
    for row in rows {
        if row.reclaimable_bytes >= SMALL_FILE {
            out.push(row);
            continue;
        }
        let parts: Vec<&str> = row.path.split('/').collect();
        let keep = (parts.len().saturating_sub(1)).min(depth);
        if keep == 0 {
            out.push(row);
            continue;
        }
        groups.entry(parts[..keep].join("/")).or_default().push(row);
    }
    for (dir, members) in groups {
        if members.len() == 1 {
            out.extend(members);
            continue;
        }
        out.push(merge(dir, members));
    }
    out
}

/// One row for a directory's small wasted files.
fn merge(dir: String, members: Vec<WastedPath>) -> WastedPath {
    let mut layers: Vec<usize> = members.iter().flat_map(|m| m.layers.iter().copied()).collect();
    layers.sort_unstable();
    layers.dedup();
    let mut events: BTreeMap<(usize, Action, Option<String>), PathEvent> = BTreeMap::new();
    for event in members.iter().flat_map(|m| &m.events) {
        let key = (event.layer, event.action, event.how.clone());
        match events.get_mut(&key) {
            Some(merged) => {
                merged.files += 1;
                for change in &mut merged.changed {
                    let same = event.changed.iter().find(|c| c.field == change.field);
                    if same.is_none_or(|c| c.from != change.from || c.to != change.to) {
                        change.from = "various".into();
                        change.to = "various".into();
                    }
                }
            }
            None => {
                events.insert(key, event.clone());
            }
        }
    }
    WastedPath {
        path: format!("{dir}/"),
        files: members.len(),
        copies: members.iter().map(|m| m.copies).sum(),
        reclaimable_bytes: members.iter().map(|m| m.reclaimable_bytes).sum(),
        layers,
        base: members.iter().all(|m| m.base),
        events: events.into_values().collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_metadata_fix_names_what_changed() {
        let set = |fields: &[&str]| fields.iter().map(|f| f.to_string()).collect();
        let fix = metadata_fix(&set(&["mode", "uid", "mtime"]), true);
        assert!(
            fix.starts_with(
                "set the mode and owner as the file is added (`COPY --chmod=… --chown=…`): a \
                 later chmod and chown"
            ),
            "{fix}"
        );
        let fix = metadata_fix(&set(&["gid"]), false);
        assert!(fix.starts_with("chown it in the same RUN that creates it"), "{fix}");
        let fix = metadata_fix(&set(&["xattrs"]), true);
        assert!(fix.contains("`setcap` or `setfattr`") && !fix.contains("COPY"), "{fix}");
    }

    #[test]
    fn dates_are_civil_utc() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(1_700_000_000), "2023-11-14 22:13:20 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
    }

    #[test]
    fn output_names_sit_beside_the_input() {
        assert_eq!(squashed_name("app.tar"), "app-squashed.tar");
        assert_eq!(squashed_name("app.tar.gz"), "app-squashed.tar.gz");
        assert_eq!(squashed_name("app.tar.xz"), "app-squashed.tar");
        assert_eq!(squashed_name("docker-archive:app.tbz2:@1"), "docker-archive:app-squashed.tar");
        assert_eq!(
            squashed_name("docker-archive:app.tar:app:1"),
            "docker-archive:app-squashed.tar:app:1"
        );
        assert_eq!(squashed_name("oci:out:app"), "oci:out:app-squashed");
        assert_eq!(squashed_name("oci:out"), "oci:out:squashed");
        assert_eq!(
            squashed_name("docker://localhost:5000/app:1"),
            "docker://localhost:5000/app:1-squashed"
        );
        assert_eq!(
            squashed_name("docker://localhost:5000/app"),
            "docker://localhost:5000/app:squashed"
        );
        assert_eq!(squashed_name("-"), "-");
        assert_eq!(quoted("my image.tar"), "'my image.tar'");
    }

    #[test]
    fn tools_and_build_trees_are_told() {
        assert_eq!(package_tool("var/lib/apt/lists/deb.debian.org_dists"), Some("apt"));
        assert_eq!(package_tool("root/.cache/pip/http/a"), Some("pip"));
        assert_eq!(package_tool("usr/bin/python3"), None);
        assert!(build_only("usr/lib/gcc/x86_64-linux-gnu/12/cc1"));
        assert!(build_only("usr/bin/x86_64-linux-gnu-gcc"));
        assert!(build_only("usr/lib/x86_64-linux-gnu/libssl.a"));
        assert!(!build_only("usr/bin/python3"));
    }
}
