use std::path::Path;
use std::process::Command;

use squash::{Image, LayerSelector, Output, OutputFormat, SquashOptions};
use squash_testkit::{LayerBuilder, LayerCompression};

use crate::support::build;

use squash_testkit::tool_available as available;

fn run(cmd: &mut Command) -> String {
    let output = cmd.output().expect("spawn");
    assert!(
        output.status.success(),
        "{cmd:?} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn squashed(dir: &Path) -> (std::path::PathBuf, Image) {
    // umoci lets a whiteout that follows same-layer entries spare their parents; the spec does
    // not, so the cross-check uses layers written as Docker and BuildKit write them (whiteouts
    // first, parents before children).
    let l = LayerBuilder::new;
    let stack = vec![
        l().dir("etc")
            .file("etc/os-release", b"demo")
            .dir("usr")
            .dir("usr/bin")
            .file_with("usr/bin/sh", b"sh", 0o755, 0, 0, &[])
            .dir_with("srv", 0o750, 7, 7)
            .file("srv/old", b"old")
            .finish(),
        l().dir("var")
            .dir("var/lib")
            .dir("var/lib/lists")
            .file("var/lib/lists/a", &vec![b'a'; 5000])
            .file("var/lib/lists/b", b"b")
            .finish(),
        l().file_with("usr/bin/tool", b"tool v1", 0o4755, 1000, 1000, &[("user.note", b"hello")])
            .hardlink("usr/bin/tool-alias", "usr/bin/tool")
            .symlink("usr/bin/t", "tool")
            .finish(),
        l().whiteout("var/lib/lists").whiteout("srv").dir("srv").file("srv/new", b"new").finish(),
        l().file_with("usr/bin/tool", b"tool v2", 0o700, 0, 0, &[])
            .dir("etc/os-release")
            .file("etc/os-release/x", b"now a dir")
            .finish(),
        l().opaque("etc").dir("etc").file("etc/only", b"only").finish(),
    ];
    let input = build(dir, &stack, LayerCompression::Gzip);
    let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
    (input, image)
}

#[test]
fn skopeo_reads_every_output_format() {
    if !available("skopeo") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, image) = squashed(dir.path());
    let plan =
        image.plan(&SquashOptions::default().with_selector(LayerSelector::Top(4))).expect("plan");
    for (name, format, transport) in [
        ("oci", OutputFormat::OciLayout, "oci"),
        ("oci.tar", OutputFormat::OciArchive, "oci-archive"),
        ("docker.tar", OutputFormat::DockerArchive, "docker-archive"),
    ] {
        let path = dir.path().join(name);
        plan.execute(&image, &Output::new(path.clone(), format).with_tag("app:1")).expect("write");
        let reference = match format {
            OutputFormat::DockerArchive => format!("{transport}:{}", path.display()),
            _ => format!("{transport}:{}:app:1", path.display()),
        };
        let json = run(Command::new("skopeo").args(["inspect", "--raw"]).arg(&reference));
        assert!(
            json.contains("layers") || json.contains("Layers") || json.contains("schemaVersion"),
            "{reference}: {json}"
        );
        let copy = dir.path().join(format!("{name}-copy"));
        run(Command::new("skopeo")
            .args(["copy", "--quiet"])
            .arg(&reference)
            .arg(format!("dir:{}", copy.display())));
    }
}

fn tree(root: &Path) -> Vec<String> {
    let output = run(Command::new("find")
        .arg(".")
        .args(["-printf", "%y %m %U:%G %s %l %p\\n"])
        .current_dir(root));
    let mut lines: Vec<String> = output.lines().map(|l| l.to_string()).collect();
    lines.sort();
    lines
}

#[test]
fn umoci_unpacks_original_and_squashed_to_equal_trees() {
    if !available("umoci") {
        return;
    }
    for top in [2, 4, 5] {
        umoci_case(top);
    }
}

fn umoci_case(top: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (input, image) = squashed(dir.path());
    umoci_compare(dir.path(), &input, &image, LayerSelector::Top(top));
}

/// The case: `x/y/f` with no directory headers, deleted by the next layer. umoci does
/// not create a whiteout's parents, so the squashed layer must name `x/` and `x/y/` itself.
#[test]
fn umoci_keeps_directories_implied_and_emptied_inside_the_range() {
    if !available("umoci") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let stack = vec![
        LayerBuilder::new().file("keep", b"keep").finish(),
        LayerBuilder::new()
            .file("x/y/f", b"f")
            .file(format!("{}/z/f", "L".repeat(120)), b"f")
            .finish(),
        LayerBuilder::new().whiteout("x/y/f").whiteout(format!("{}/z/f", "L".repeat(120))).finish(),
    ];
    let input = build(dir.path(), &stack, LayerCompression::Gzip);
    let image = Image::open(&format!("oci:{}:t", input.display())).expect("open");
    umoci_compare(dir.path(), &input, &image, LayerSelector::Ranges(vec![(1, 2)]));
}

/// Squashes `image` (read from `input`) with `selector` and compares what umoci unpacks of both.
fn umoci_compare(dir: &Path, input: &Path, image: &Image, selector: LayerSelector) {
    let out = dir.join("out");
    image
        .plan(&SquashOptions::default().with_selector(selector))
        .and_then(|p| {
            p.execute(image, &Output::new(out.clone(), OutputFormat::OciLayout).with_tag("t"))
        })
        .expect("squash");
    let mut trees = Vec::new();
    for (layout, bundle) in [(input, "b1"), (out.as_path(), "b2")] {
        let bundle = dir.join(bundle);
        run(Command::new("umoci")
            .args(["unpack", "--image"])
            .arg(format!("{}:t", layout.display()))
            .arg(&bundle));
        let rootfs = bundle.join("rootfs");
        let mut lines = tree(&rootfs);
        let sums = run(Command::new("sh")
            .arg("-c")
            .arg("find . -type f -print0 | sort -z | xargs -0 -r sha256sum")
            .current_dir(&rootfs));
        lines.extend(sums.lines().map(str::to_string));
        let attrs = run(Command::new("sh")
            .arg("-c")
            .arg(
                "find . -type f -print0 | sort -z | xargs -0 -r getfattr -h -d -m - 2>/dev/null \
                || true",
            )
            .current_dir(&rootfs));
        lines.push(attrs);
        trees.push(lines);
    }
    if trees[0] != trees[1] {
        let (before, _) = squash_testkit::read_oci_layout(input, Some("t"));
        let (after, _) = squash_testkit::read_oci_layout(&out, Some("t"));
        panic!(
            "umoci unpacked different trees\n{:?}\n{:?}\n--- input:\n{}\n--- output:\n{}",
            trees[0].iter().filter(|l| !trees[1].contains(l)).collect::<Vec<_>>(),
            trees[1].iter().filter(|l| !trees[0].contains(l)).collect::<Vec<_>>(),
            crate::support::listing(before.iter().map(|(_, t)| t.as_slice())),
            crate::support::listing(after.iter().map(|(_, t)| t.as_slice()))
        );
    }
}

/// The browser this test renders with: Debian's Chromium.
fn chromium() -> Option<&'static str> {
    let found = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|b| Command::new(b).arg("--version").output().is_ok_and(|o| o.status.success()));
    squash_testkit::required("chromium", found.is_some());
    found
}

/// Counts pixels close to `rgb`.
fn count_color(pixels: &[u8], channels: usize, rgb: [u8; 3]) -> usize {
    pixels.chunks(channels).filter(|p| p.iter().zip(rgb).all(|(a, b)| a.abs_diff(b) < 12)).count()
}

/// Renders `file` in headless `browser` at `size` (`W,H`) and returns the screenshot's pixels
/// and channels per pixel; the PNG stays in `dir` (copied to `SQUASH_KEEP_CHART` if set).
fn screenshot(
    browser: &str,
    dir: &std::path::Path,
    file: &std::path::Path,
    size: &str,
) -> (Vec<u8>, usize) {
    let png =
        dir.join(format!("{}.png", file.file_stem().and_then(|s| s.to_str()).unwrap_or("page")));
    let profile = dir.join("profile");
    run(Command::new(browser)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
        ])
        .args(["--disable-component-update", "--disable-sync", "--hide-scrollbars"])
        .arg(format!("--window-size={size}"))
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", file.display())));
    if let Ok(keep) = std::env::var("SQUASH_KEEP_CHART") {
        std::fs::copy(&png, keep).expect("copy screenshot");
    }
    let decoder =
        png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png).expect("screenshot")));
    let mut reader = decoder.read_info().expect("png");
    let mut pixels = vec![0; reader.output_buffer_size()];
    let info = reader.next_frame(&mut pixels).expect("frame");
    pixels.truncate(info.buffer_size());
    (pixels, info.color_type.samples())
}

#[test]
fn report_chart_renders_in_a_browser() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut builder = squash_testkit::ImageBuilder::new(LayerCompression::Gzip);
    builder.layer(
        LayerBuilder::new().dir("usr").file("usr/app", &vec![b'a'; 60_000]).finish(),
        "COPY app /usr/app",
    );
    builder.layer(
        LayerBuilder::new().dir("var").file("var/cache", &vec![b'c'; 40_000]).finish(),
        "RUN apt-get update",
    );
    builder.layer(
        LayerBuilder::new().whiteout("var/cache").file("usr/app", &vec![b'b'; 60_000]).finish(),
        "RUN rm -rf /var/cache && rebuild",
    );
    let layout = dir.path().join("in");
    builder.write_oci_layout(&layout, "t");
    let image = squash::Image::open(&format!("oci:{}:t", layout.display())).expect("open");
    let report = image
        .report(&SquashOptions::default().with_selector(LayerSelector::Top(2)), 10)
        .expect("report");
    assert!(report.wasted_bytes > 0, "the chart must show waste");
    let svg = dir.path().join("chart.svg");
    std::fs::write(&svg, squash::present::report_svg(&report)).expect("write svg");
    let (pixels, channels) = screenshot(browser, dir.path(), &svg, "900,200");
    let pixels = &pixels[..];
    // Kept bytes are drawn in blue, wasted bytes in red: beyond the legend's two 12x12
    // swatches, the bars must be on screen (a 60 kB bar is hundreds of pixels wide).
    let blue = count_color(pixels, channels, [0x4a, 0x7f, 0xd4]);
    let red = count_color(pixels, channels, [0xd9, 0x53, 0x4f]);
    assert!(blue > 3000 && red > 3000, "the browser drew {blue} kept and {red} wasted pixels");
}

/// `Image::tree` reads a filesystem as umoci unpacks it: types, modes, owners, link targets,
/// file sizes and contents, path by path.
#[test]
fn umoci_unpacks_what_the_tree_says() {
    if !available("umoci") {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let (input, image) = squashed(dir.path());
    let bundle = dir.path().join("bundle");
    run(Command::new("umoci")
        .args(["unpack", "--image"])
        .arg(format!("{}:t", input.display()))
        .arg(&bundle));
    let rootfs = bundle.join("rootfs");
    let listing = run(Command::new("find")
        .arg(".")
        .args(["-printf", "%y %m %U:%G %p -> %l\\n"])
        .current_dir(&rootfs));
    let mut unpacked: Vec<String> = listing.lines().map(str::to_string).collect();
    let sums = run(Command::new("sh")
        .arg("-c")
        .arg("find . -type f -printf '%s ' -exec sha256sum {} \\;")
        .current_dir(&rootfs));
    unpacked.extend(sums.lines().map(|l| {
        let mut parts = l.split_whitespace();
        let (size, sum, path) =
            (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
        format!("{path} {size} {sum}")
    }));
    unpacked.sort();
    let tree = image.tree_in(&squash::Context::new().with_threads(2)).expect("tree");
    let mut read: Vec<String> = Vec::new();
    for (path, entry) in &tree.entries {
        let name = if path.is_root() { ".".to_string() } else { format!("./{}", path.display()) };
        let kind = match entry.kind {
            squash::EntryKind::Dir => 'd',
            squash::EntryKind::Symlink => 'l',
            squash::EntryKind::CharDevice => 'c',
            squash::EntryKind::BlockDevice => 'b',
            squash::EntryKind::Fifo => 'p',
            _ => 'f',
        };
        let link =
            entry.link().map(|l| String::from_utf8_lossy(l).into_owned()).unwrap_or_default();
        // umoci does not apply a symlink's mode; the kernel shows 777.
        let mode = if kind == 'l' { 0o777 } else { entry.mode };
        read.push(format!("{kind} {mode:o} {}:{} {name} -> {link}", entry.uid, entry.gid));
        if let Some(content) = &entry.content() {
            read.push(format!("{name} {} {}", entry.size, content.hex()));
        }
    }
    read.sort();
    assert_eq!(read, unpacked);
}

/// The HTML page of a report, drawn by Chromium: the chart's bars and the tables (header cells
/// and their borders) are on screen.
#[test]
fn report_page_renders_in_a_browser() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let layout = dir.path().join("in");
    squash_testkit::realistic_image(LayerCompression::Gzip, 5, 20).write_oci_layout(&layout, "t");
    let image = squash::Image::open(&format!("oci:{}:t", layout.display())).expect("open");
    let options = SquashOptions::default().with_selector(LayerSelector::Top(6));
    let report = image
        .report_in(&options, &squash::ReportOptions::default(), &squash::Context::new())
        .expect("report");
    assert!(
        report.wasted_bytes > 0 && !report.clutter.is_empty(),
        "the page must show waste and clutter"
    );
    let document = squash::document::ReportDocument::new(&image, report, Vec::new());
    let html = dir.path().join("report.html");
    std::fs::write(&html, squash::present::report_html(std::slice::from_ref(&document), None, 10))
        .expect("write html");
    let (pixels, channels) = screenshot(browser, dir.path(), &html, "1200,1600");
    let pixels = &pixels[..];
    let blue = count_color(pixels, channels, [0x4a, 0x7f, 0xd4]);
    let red = count_color(pixels, channels, [0xd9, 0x53, 0x4f]);
    let header = count_color(pixels, channels, [0xdf, 0xe7, 0xf5]);
    let border = count_color(pixels, channels, [0x8a, 0x9b, 0xb8]);
    assert!(blue > 3000 && red > 3000, "the browser drew {blue} kept and {red} wasted pixels");
    assert!(
        header > 5000 && border > 2000,
        "the browser drew {header} table header and {border} border pixels"
    );
}

/// The page puts the causes first and splits each layer's bar by the layer that made its bytes
/// waste, each such layer a colour of the legend; drawn by Chromium at a desktop's width and a
/// phone's, both colours are on screen. The Markdown view holds the causes as a table.
#[test]
fn report_page_shows_causes_and_their_colours_at_desktop_and_phone_widths() {
    let Some(browser) = chromium() else { return };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut b = squash_testkit::ImageBuilder::new(LayerCompression::Gzip);
    b.layer(LayerBuilder::new().file("etc/os-release", b"ID=x\n").finish(), "FROM base");
    b.layer(
        LayerBuilder::new().file("var/lib/apt/lists/main", &vec![b'l'; 300_000]).finish(),
        "RUN apt-get update",
    );
    b.layer(
        LayerBuilder::new().file_with("data/big", &vec![b'd'; 300_000], 0o644, 0, 0, &[]).finish(),
        "COPY big /data/big",
    );
    b.layer(LayerBuilder::new().whiteout("var/lib/apt/lists").finish(), "RUN rm -rf lists");
    b.layer(
        LayerBuilder::new().file_with("data/big", &vec![b'd'; 300_000], 0o600, 0, 0, &[]).finish(),
        "RUN chmod 600 /data/big",
    );
    let layout = dir.path().join("in");
    b.write_oci_layout(&layout, "t");
    let image = squash::Image::open(&format!("oci:{}:t", layout.display())).expect("open");
    let report = image
        .report_in(
            &SquashOptions::default(),
            &squash::ReportOptions::default(),
            &squash::Context::new(),
        )
        .expect("report");
    assert_eq!(report.causes.len(), 2, "{:#?}", report.causes);
    let document = squash::document::ReportDocument::new(&image, report, Vec::new());
    let page = squash::present::report_html(std::slice::from_ref(&document), None, 10);
    let (causes, layers) = (
        page.find("The biggest causes and how to fix them").expect("causes heading"),
        page.find("<h3>Layers</h3>").expect("layers heading"),
    );
    assert!(causes < layers, "the causes come first");
    assert!(page.contains("wasted by layer 3: RUN rm -rf lists"), "legend");
    assert!(page.contains("wasted by layer 4: RUN chmod 600 /data/big"), "legend");
    let html = dir.path().join("causes.html");
    std::fs::write(&html, &page).expect("write html");
    for size in ["1280,1400", "390,1400"] {
        let (pixels, channels) = screenshot(browser, dir.path(), &html, size);
        let red = count_color(&pixels, channels, [0xd9, 0x53, 0x4f]);
        let orange = count_color(&pixels, channels, [0xf0, 0xad, 0x4e]);
        let header = count_color(&pixels, channels, [0xdf, 0xe7, 0xf5]);
        assert!(
            red > 400 && orange > 400 && header > 2000,
            "at {size}: {red} pixels wasted by layer 3, {orange} by layer 4, {header} header"
        );
    }
    let markdown = squash::present::report_markdown(std::slice::from_ref(&document), None, 10);
    let table = markdown
        .split("**The biggest causes and how to fix them**")
        .nth(1)
        .expect("causes in Markdown");
    let rows: Vec<&str> = table.trim_start().lines().take_while(|l| l.starts_with('|')).collect();
    assert_eq!(rows.len(), 4, "header, rule and two causes:\n{table}");
    assert!(rows[1].starts_with("|---:|"), "{}", rows[1]);
    let cells = |r: &&str| r.matches(" | ").count();
    assert!(rows.iter().filter(|r| !r.starts_with("|---")).all(|r| cells(r) == 5), "{rows:#?}");
}
