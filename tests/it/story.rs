//! The report's stories and causes on images built as the guides on image size describe
//! Dockerfiles: package lists updated, used and removed in separate steps; a large file added,
//! touched and chmod-ed, then removed; a pip cache removed later; a compiler installed and
//! purged; many small files written and removed. Every story, cause, kind and fix is asserted
//! exactly.

use squash::{Action, CauseKind, Image, LayerSelector, Report, ReportOptions, SquashOptions};
use squash_testkit::{ImageBuilder, LayerBuilder, LayerCompression};

/// The report of `image` (every layer above layer 0 planned), as the CLI names its input.
fn report_of(image: &ImageBuilder, how: ReportOptions) -> Report {
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = dir.path().join("in");
    image.write_oci_layout(&layout, "app");
    let opened = Image::open(&format!("oci:{}:app", layout.display())).expect("open");
    opened
        .report_in(&SquashOptions::default(), &how.with_input("app.tar"), &squash::Context::new())
        .expect("report")
}

/// The guides' Dockerfile, one step per layer:
///
/// ```text
/// FROM base                                            # 0
/// RUN apt-get update                                   # 1: lists
/// RUN apt-get install -y gcc libc6-dev                 # 2: a compiler and headers
/// COPY big.bin /data/big.bin                           # 3: 2 MB
/// RUN touch /data/big.bin && chmod 640 /data/big.bin   # 4: the same bytes again
/// RUN pip install flask                                # 5: site-packages and the pip cache
/// RUN rm -rf /var/lib/apt/lists/* /root/.cache/pip     # 6
/// RUN apt-get purge -y gcc libc6-dev                   # 7: the compiler deleted
/// RUN rm /data/big.bin                                 # 8
/// ```
fn guide_image() -> ImageBuilder {
    let big: Vec<u8> =
        (0..2_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let mut b = ImageBuilder::new(LayerCompression::Gzip);
    b.layer(
        LayerBuilder::new().dir("etc").file("etc/os-release", b"ID=debian\n").finish(),
        "FROM base",
    );
    let mut lists = LayerBuilder::new();
    lists.dir("var/lib/apt/lists");
    for (name, size) in [("deb_main_Packages", 300_000), ("deb_updates_Packages", 200_000)] {
        lists.file(format!("var/lib/apt/lists/{name}"), &vec![b'p'; size]);
    }
    b.layer(lists.finish(), "RUN apt-get update");
    b.layer(
        LayerBuilder::new()
            .file_with("usr/bin/gcc", &vec![b'g'; 400_000], 0o755, 0, 0, &[])
            .file("usr/lib/gcc/x86_64-linux-gnu/12/cc1", &vec![b'c'; 500_000])
            .file("usr/include/stdio.h", &vec![b'h'; 100_000])
            .finish(),
        "RUN apt-get install -y gcc libc6-dev",
    );
    b.layer(
        LayerBuilder::new()
            .mtime(1_600_000_000)
            .file_with("data/big.bin", &big, 0o644, 0, 0, &[])
            .finish(),
        "COPY big.bin /data/big.bin",
    );
    b.layer(
        LayerBuilder::new()
            .mtime(1_700_000_000)
            .file_with("data/big.bin", &big, 0o640, 0, 0, &[])
            .finish(),
        "RUN touch /data/big.bin && chmod 640 /data/big.bin",
    );
    let mut pip = LayerBuilder::new();
    pip.file("usr/lib/python3/site-packages/flask/app.py", &vec![b'f'; 90_000]);
    pip.file("root/.cache/pip/http/wheel-1", &vec![b'w'; 150_000]);
    b.layer(pip.finish(), "RUN pip install flask");
    b.layer(
        LayerBuilder::new()
            .whiteout("var/lib/apt/lists/deb_main_Packages")
            .whiteout("var/lib/apt/lists/deb_updates_Packages")
            .whiteout("root/.cache/pip")
            .finish(),
        "RUN rm -rf /var/lib/apt/lists/* /root/.cache/pip",
    );
    b.layer(
        LayerBuilder::new()
            .whiteout("usr/bin/gcc")
            .whiteout("usr/lib/gcc")
            .whiteout("usr/include/stdio.h")
            .finish(),
        "RUN apt-get purge -y gcc libc6-dev",
    );
    b.layer(LayerBuilder::new().whiteout("data/big.bin").finish(), "RUN rm /data/big.bin");
    b
}

#[test]
fn every_wasted_path_has_its_story() {
    let report = report_of(&guide_image(), ReportOptions::default().with_top_paths(50));
    let story = |path: &str| -> Vec<(usize, Action, Option<String>)> {
        let row = report
            .wasted_paths
            .iter()
            .find(|p| p.path == path)
            .unwrap_or_else(|| panic!("{path} not listed: {:#?}", report.wasted_paths));
        row.events.iter().map(|e| (e.layer, e.action, e.how.clone())).collect()
    };
    assert_eq!(
        story("data/big.bin"),
        [
            (3, Action::Added, None),
            (4, Action::Metadata, None),
            (8, Action::Deleted, Some("whiteout".into()))
        ]
    );
    let big = report.wasted_paths.iter().find(|p| p.path == "data/big.bin").expect("big");
    assert_eq!(big.copies, 2);
    assert_eq!(big.reclaimable_bytes, 4_000_000);
    let metadata = &big.events[1];
    assert_eq!(
        metadata.created_by.as_deref(),
        Some("RUN touch /data/big.bin && chmod 640 /data/big.bin")
    );
    let changed: Vec<(&str, &str, &str)> = metadata
        .changed
        .iter()
        .map(|c| (c.field.as_str(), c.from.as_str(), c.to.as_str()))
        .collect();
    assert_eq!(
        changed,
        [("mode", "0644", "0640"), ("mtime", "2020-09-13 12:26:40 UTC", "2023-11-14 22:13:20 UTC")]
    );
    assert_eq!(
        story("usr/lib/gcc/x86_64-linux-gnu/12/cc1"),
        [(2, Action::Added, None), (7, Action::Deleted, Some("parent usr/lib/gcc deleted".into()))]
    );
    assert_eq!(
        story("root/.cache/pip/http/wheel-1"),
        [
            (5, Action::Added, None),
            (6, Action::Deleted, Some("parent root/.cache/pip deleted".into()))
        ]
    );
}

#[test]
fn causes_name_both_steps_a_kind_a_fix_and_the_squash() {
    let report = report_of(&guide_image(), ReportOptions::default());
    type Row<'a> = (usize, usize, CauseKind, Option<&'a str>, u64, usize);
    let causes: Vec<Row> = report
        .causes
        .iter()
        .map(|c| {
            (c.stored_by.layer, c.wasted_by.layer, c.kind, c.tool.as_deref(), c.bytes, c.files)
        })
        .collect();
    assert_eq!(
        causes,
        [
            (3, 4, CauseKind::MetadataOnly, None, 2_000_000, 1),
            (4, 8, CauseKind::DeletedLater, None, 2_000_000, 1),
            (2, 7, CauseKind::BuildOnly, None, 1_000_000, 3),
            (1, 6, CauseKind::PackageCache, Some("apt"), 500_000, 2),
            (5, 6, CauseKind::PackageCache, Some("pip"), 150_000, 1),
        ]
    );
    let first = &report.causes[0];
    assert_eq!(first.stored_by.created_by.as_deref(), Some("COPY big.bin /data/big.bin"));
    assert_eq!(
        first.wasted_by.created_by.as_deref(),
        Some("RUN touch /data/big.bin && chmod 640 /data/big.bin")
    );
    assert!(first.fix.contains("COPY --chmod"), "{}", first.fix);
    assert_eq!(first.squash.command, "squash app.tar --layers 3..4 -o app-squashed.tar");
    assert_eq!(first.squash.reclaims, 2_000_000);
    let deleted = &report.causes[1];
    assert!(
        deleted.fix.contains("same RUN") && deleted.fix.contains("/data/big.bin"),
        "{}",
        deleted.fix
    );
    // Layers 4..8 hold the deleted copy and the pip cache, both stored and made waste inside it.
    assert_eq!(deleted.squash.reclaims, 2_150_000);
    assert!(report.causes[2].fix.contains("multi-stage"), "{}", report.causes[2].fix);
    assert!(
        report.causes[3].fix.contains("rm -rf /var/lib/apt/lists/*"),
        "{}",
        report.causes[3].fix
    );
    assert!(report.causes[4].fix.contains("--no-cache-dir"), "{}", report.causes[4].fix);
    // Causes account for every wasted byte, and none lies in the base (layer 0).
    assert_eq!(report.causes.iter().map(|c| c.bytes).sum::<u64>(), report.wasted_bytes);
    assert!(report.causes.iter().all(|c| !c.base));
}

/// Waste inside the base is marked as such: the planned squash (above the base) keeps it.
#[test]
fn waste_in_the_base_is_marked() {
    let mut b = ImageBuilder::new(LayerCompression::Gzip);
    b.layer(
        LayerBuilder::new().file("opt/tool.tar", &vec![b't'; 100_000]).finish(),
        "ADD tool.tar /opt/",
    );
    b.layer(LayerBuilder::new().whiteout("opt/tool.tar").finish(), "RUN rm /opt/tool.tar");
    b.layer(LayerBuilder::new().file("app/a", &vec![b'a'; 100_000]).finish(), "COPY a /app/");
    b.layer(LayerBuilder::new().file("app/a", &vec![b'b'; 100_000]).finish(), "COPY a2 /app/a");
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = dir.path().join("in");
    b.write_oci_layout(&layout, "app");
    let image = Image::open(&format!("oci:{}:app", layout.display())).expect("open");
    let options = SquashOptions::default().with_selector(LayerSelector::Top(2));
    let report = image
        .report_in(
            &options,
            &ReportOptions::default().with_input("app.tar"),
            &squash::Context::new(),
        )
        .expect("report");
    let tool = report.wasted_paths.iter().find(|p| p.path == "opt/tool.tar").expect("tool");
    assert!(tool.base);
    let app = report.wasted_paths.iter().find(|p| p.path == "app/a").expect("app");
    assert!(!app.base);
    assert_eq!(
        app.events.iter().map(|e| e.action).collect::<Vec<_>>(),
        [Action::Added, Action::Replaced]
    );
    let base_cause = report.causes.iter().find(|c| c.stored_by.layer == 0).expect("cause");
    assert!(base_cause.base);
    assert_eq!(base_cause.kind, CauseKind::DeletedLater);
    // The base's steps created it: the fix is about the base, not about a RUN of this image.
    assert!(
        base_cause.fix.contains("base image holds it")
            && base_cause.fix.contains("--layers 0..1")
            && !base_cause.fix.contains("same RUN"),
        "{}",
        base_cause.fix
    );
    let rewritten = report.causes.iter().find(|c| c.stored_by.layer == 2).expect("cause");
    assert_eq!(rewritten.kind, CauseKind::Rewritten);
    assert!(!rewritten.base);
}

/// Many small files written and removed make one row for their directory; `--no-group` and a
/// deeper `--depth` expand it.
#[test]
fn small_files_are_grouped_by_directory() {
    let mut b = ImageBuilder::new(LayerCompression::Gzip);
    b.layer(LayerBuilder::new().file("etc/hostname", b"x\n").finish(), "FROM base");
    let mut many = LayerBuilder::new();
    for i in 0..1111 {
        many.file(format!("srv/cache/shard{}/item{i}", i % 3), &[b'z'; 10]);
    }
    many.file("srv/big.db", &vec![b'd'; 200_000]);
    b.layer(many.finish(), "RUN generate");
    b.layer(LayerBuilder::new().whiteout("srv").finish(), "RUN rm -rf /srv");
    let grouped = report_of(&b, ReportOptions::default());
    let rows: Vec<(&str, usize, u64)> = grouped
        .wasted_paths
        .iter()
        .map(|p| (p.path.as_str(), p.files, p.reclaimable_bytes))
        .collect();
    assert_eq!(
        rows,
        [
            ("srv/big.db", 1, 200_000),
            ("srv/cache/shard0/", 371, 3710),
            ("srv/cache/shard1/", 370, 3700),
            ("srv/cache/shard2/", 370, 3700)
        ]
    );
    let group = &grouped.wasted_paths[1];
    assert_eq!(group.events.len(), 2);
    assert_eq!(group.events[1].files, 371);
    assert_eq!(group.events[1].how.as_deref(), Some("parent srv deleted"));
    let shallow = report_of(&b, ReportOptions::default().with_group_depth(2));
    assert_eq!(shallow.wasted_paths[1].path, "srv/cache/");
    assert_eq!(shallow.wasted_paths[1].files, 1111);
    let each = report_of(&b, ReportOptions::default().with_grouping(false).with_top_paths(2000));
    assert_eq!(each.wasted_paths.len(), 1112);
    assert!(each.wasted_paths.iter().all(|p| p.files == 1));
}

/// A file moved or renamed by a later step (`mv`, or a directory renamed) is told from a file
/// deleted: the step that deleted it added the same content at another path. A file deleted
/// beside an unrelated new one stays deleted.
#[test]
fn a_file_moved_by_a_later_step_is_told_apart_and_its_fix_names_where_it_went() {
    let payload: Vec<u8> = (0..300_000u32).map(|i| (i.wrapping_mul(40_503) >> 7) as u8).collect();
    let other: Vec<u8> = payload.iter().map(|b| b ^ 0x5a).collect();
    let mut b = ImageBuilder::new(LayerCompression::Gzip);
    b.layer(LayerBuilder::new().file("etc/hostname", b"x\n").finish(), "FROM base");
    b.layer(
        LayerBuilder::new()
            .file("tmp/payload.bin", &payload)
            .file("src/app/main.py", &vec![b'm'; 50_000])
            .file("src/app/lib.py", &vec![b'l'; 40_000])
            .file("tmp/notes.txt", &vec![b'n'; 20_000])
            .finish(),
        "COPY . /",
    );
    b.layer(
        LayerBuilder::new()
            .whiteout("tmp/payload.bin")
            .file("opt/payload.bin", &payload)
            .whiteout("src/app")
            .dir("srv/app")
            .file("srv/app/main.py", &vec![b'm'; 50_000])
            .file("srv/app/lib.py", &vec![b'l'; 40_000])
            .whiteout("tmp/notes.txt")
            .file("opt/other.bin", &other)
            .finish(),
        "RUN mv /tmp/payload.bin /opt/ && mv /src/app /srv/ && rm /tmp/notes.txt && make other",
    );
    let report = report_of(&b, ReportOptions::default());
    let kinds: Vec<(CauseKind, u64, usize)> =
        report.causes.iter().map(|c| (c.kind, c.bytes, c.files)).collect();
    assert_eq!(kinds, [(CauseKind::Moved, 390_000, 3), (CauseKind::DeletedLater, 20_000, 1)]);
    let moved = &report.causes[0];
    assert_eq!(moved.paths, ["tmp/payload.bin", "src/app/main.py", "src/app/lib.py"]);
    assert!(moved.fix.contains("/opt/payload.bin") && moved.fix.contains("`mv`"), "{}", moved.fix);
    assert_eq!(CauseKind::Moved.words(), "moved by a later step (stored again at its new path)");
    assert_eq!(serde_json::to_value(CauseKind::Moved).expect("json"), serde_json::json!("moved"));
}

/// A file a `COPY` or `ADD` stored and a later `RUN` deleted cannot be deleted "in the same RUN":
/// the fix says how to use it without storing it. The step is recognised as BuildKit and the
/// legacy builder write it; a `RUN` that stored a file keeps the same-RUN fix.
#[test]
fn a_copied_file_deleted_later_gets_a_fix_that_does_not_store_it() {
    for copy_step in
        ["COPY app.tar.gz /tmp/ # buildkit", "/bin/sh -c #(nop) COPY file:4f1e…c2 in /tmp/ "]
    {
        let mut b = ImageBuilder::new(LayerCompression::Gzip);
        b.layer(LayerBuilder::new().file("etc/hostname", b"x\n").finish(), "FROM base");
        b.layer(
            LayerBuilder::new().file("tmp/app.tar.gz", &vec![b'a'; 80_000]).finish(),
            copy_step,
        );
        b.layer(
            LayerBuilder::new().file("tmp/fetched.tar.gz", &vec![b'f'; 60_000]).finish(),
            "RUN curl -o /tmp/fetched.tar.gz https://example.com/f.tar.gz",
        );
        b.layer(
            LayerBuilder::new()
                .whiteout("tmp/app.tar.gz")
                .whiteout("tmp/fetched.tar.gz")
                .file("opt/app/run", &vec![b'r'; 1_000])
                .finish(),
            "RUN tar -xzf /tmp/app.tar.gz -C /opt && rm /tmp/*.tar.gz",
        );
        let report = report_of(&b, ReportOptions::default());
        let fixes: Vec<(usize, CauseKind, &str)> =
            report.causes.iter().map(|c| (c.stored_by.layer, c.kind, c.fix.as_str())).collect();
        assert_eq!(fixes.len(), 2, "{fixes:#?}");
        let (layer, kind, copied) = fixes[0];
        assert_eq!((layer, kind), (1, CauseKind::DeletedLater));
        assert!(
            copied.contains("--mount=type=bind") && copied.contains("/tmp/app.tar.gz"),
            "{copied}"
        );
        assert!(!copied.contains("same RUN"), "{copied}");
        let (layer, kind, fetched) = fixes[1];
        assert_eq!((layer, kind), (2, CauseKind::DeletedLater));
        assert!(
            fetched.contains("same RUN") && fetched.contains("/tmp/fetched.tar.gz"),
            "{fetched}"
        );
    }
}
