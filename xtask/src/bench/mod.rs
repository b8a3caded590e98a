//! `cargo xtask bench`: squash timed on large generated images (the testkit's) against the
//! physical limit (plain decompression and compression of the same bytes, with their CPU spread
//! over every core as the floor) and installed peers; `--entries` for the entry-count series.

mod entries;
mod images;
mod measure;
mod peers;

use std::fs;
use std::path::PathBuf;
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::{root, run_command};
use images::{extract_new_layer, newest_layer_blob, write_docker_archive, write_layout};
use measure::{have, limit_row, median, timed, timed_cpu, timed_sh, timed_stderr, warm};

/// The binary timed: the one given (`--squash BIN`, to compare builds), else this tree's,
/// built in release mode.
fn squash_binary(given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(path) = given {
        return Ok(path);
    }
    run_command(crate::cargo().args(["build", "--release", "--quiet", "-p", "squash-cli"]))?;
    Ok(root().join("target/release/squash"))
}

pub fn run(args: &[String]) -> Result<()> {
    let mut scale = 1.0f64;
    let mut dir = root().join("target/bench");
    let mut runs = 3usize;
    let mut peers_only = false;
    let mut entries: Vec<u64> = Vec::new();
    let mut binary: Option<PathBuf> = None;
    let (mut five, mut many, mut keep) = (true, true, false);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--scale" => scale = it.next().context("--scale needs a number")?.parse()?,
            "--dir" => dir = PathBuf::from(it.next().context("--dir needs a path")?),
            "--runs" => runs = it.next().context("--runs needs a number")?.parse::<usize>()?.max(1),
            "--peers-only" => peers_only = true,
            "--keep" => keep = true,
            "--shape" => match it.next().map(String::as_str) {
                Some("five") => many = false,
                Some("many") => five = false,
                _ => bail!("--shape needs `five` (the 5-layer image) or `many` (22 layers)"),
            },
            "--squash" => binary = Some(PathBuf::from(it.next().context("--squash needs a path")?)),
            "--entries" => {
                let list =
                    it.next().context("--entries needs counts, such as 100000,400000,1000000")?;
                entries = list
                    .split(',')
                    .map(|n| n.trim().replace('_', "").parse::<u64>())
                    .collect::<Result<_, _>>()?;
            }
            other => bail!("unknown argument {other}"),
        }
    }
    if !entries.is_empty() {
        return entries::bench_entries(&squash_binary(binary)?, &dir, &entries, runs);
    }
    for tool in ["pigz", "zstd", "/usr/bin/time"] {
        if !have(tool) {
            bail!(
                "`{tool}` is needed for the physical-limit measurements (apt-get install pigz \
                zstd time)"
            );
        }
    }
    let squash = squash_binary(binary)?;
    let cores = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    println!(
        "machine: {cores} cores; squashing every layer above layer 0; medians of \
        {runs} runs"
    );
    println!(
        "\"CPU\": user and system seconds; \"floor\": the limit's own CPU spread over every \
        core, as a ratio to the limit; \"verified\": the limit's CPU and the sha256 of every \
        byte squash hashes (the range's blobs and decoded layers, the new layer and its blob, \
        with {}) spread over every core",
        measure::sha256_tool()
    );
    println!(
        "{:<28} {:>9} {:>7} {:>9} {:>7} {:>7} {:>9} {:>7} {:>7} {:>7} {:>10} {:>7}",
        "case",
        "squash s",
        "CPU s",
        "limit s",
        "CPU s",
        "ratio",
        "overlap s",
        "ratio",
        "floor",
        "RSS MB",
        "verified s",
        "ratio"
    );
    let scales: &[f64] = if five { &[scale, scale * 2.0] } else { &[] };
    for &s in scales {
        let work = dir.join(format!("scale-{s}"));
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work)?;
        let tars = squash_testkit::large::bench_layers(&work, s)?;
        let total: u64 = tars.iter().map(|t| fs::metadata(t).map(|m| m.len()).unwrap_or(0)).sum();
        println!("-- image scale {s}: {:.0} MB uncompressed in 5 layers", total as f64 / 1e6);
        let kinds: &[&str] = if peers_only { &[] } else { &["gzip", "zstd"] };
        for &kind in kinds {
            compressed_case(&squash, &work, &tars, kind, runs, cores)?;
        }
        if !peers_only && s == scale {
            if let Err(e) = peers::registry_rows(&squash, &work.join("oci-gzip"), &work, runs) {
                println!("  registry rows failed: {}", e.to_string().lines().next().unwrap_or(""));
            }
        }
        // Peers work on `docker save` tarballs.
        let archive = work.join("docker.tar");
        write_docker_archive(&archive, &tars)?;
        let out = work.join("ours-docker.tar");
        let peer_out = work.join("oci-squash.tar");
        let tmp = work.join("oci-squash-tmp");
        let peer_installed = have("oci-squash");
        // Rounds alternate squash and the peer, so that the machine's drift affects both alike.
        let (mut ours, mut ours_cpu, mut rss, mut peer, mut peer_rss, mut peer_error) =
            (Vec::new(), Vec::new(), 0f64, Vec::new(), 0f64, None);
        // The same squash from a pipe to a pipe, as `docker save | squash - -o - | docker load`
        // runs it: the tarball is spooled first, and the new layer spooled before it is sent.
        let (mut piped, mut piped_cpu, mut piped_rss) = (Vec::new(), Vec::new(), 0f64);
        let pipe_script = format!(
            "cat {} | {} - --from-layer 4 --quiet -o - > /dev/null",
            archive.display(),
            squash.display()
        );
        // The limit of a plain tar: hashing the range's layers as they are read, and the new
        // layer as it is written (`sha256sum`, the definition).
        let new_plain = work.join("new-plain.tar");
        let range: Vec<String> = tars[1..].iter().map(|t| t.display().to_string()).collect();
        let (mut read_hash, mut write_hash) = (Vec::new(), Vec::new());
        for round in 0..runs {
            warm(&[&archive]);
            let (t, r, cpu) = timed_cpu(
                Command::new(&squash)
                    .arg(&archive)
                    .args(["--from-layer", "4", "--quiet", "-o"])
                    .arg(&out),
            )?;
            ours.push(t);
            ours_cpu.push(cpu);
            rss = rss.max(r);
            if round == 0 {
                extract_new_layer(&out, &new_plain)?;
            }
            warm(&[&archive]);
            let (t, r, cpu) = timed_cpu(Command::new("sh").arg("-c").arg(&pipe_script))?;
            piped.push(t);
            piped_cpu.push(cpu);
            piped_rss = piped_rss.max(r);
            warm(&range);
            read_hash.push(timed_sh(&format!("cat {} | sha256sum > /dev/null", range.join(" ")))?);
            warm(&[&new_plain]);
            write_hash.push(timed_sh(&format!("sha256sum {} > /dev/null", new_plain.display()))?);
            if peer_installed && peer_error.is_none() {
                let _ = fs::remove_dir_all(&tmp);
                let _ = fs::remove_file(&peer_out);
                match timed(
                    Command::new("oci-squash")
                        .args(["-f", "4", "--tmp-dir"])
                        .arg(&tmp)
                        .arg("-o")
                        .arg(&peer_out)
                        .arg(&archive),
                ) {
                    Ok((t, r)) => {
                        peer.push(t);
                        peer_rss = peer_rss.max(r);
                    }
                    Err(e) => {
                        peer_error =
                            Some(e.to_string().lines().last().unwrap_or_default().to_string())
                    }
                }
                let _ = fs::remove_dir_all(&tmp);
            }
        }
        let ours = median(ours);
        // The plain limit is the hashing itself: nothing beyond it is hashed.
        limit_row(
            "docker-archive (plain tar)",
            (ours, median(ours_cpu), rss),
            &read_hash,
            &write_hash,
            &[(0.0, 0.0)],
            cores,
        );
        limit_row(
            "  the same, pipe to pipe",
            (median(piped), median(piped_cpu), piped_rss),
            &read_hash,
            &write_hash,
            &[(0.0, 0.0)],
            cores,
        );
        let _ = fs::remove_file(&new_plain);
        match (peer_installed, peer_error) {
            (false, _) => println!("  oci-squash: not installed (pip install oci-squash)"),
            (true, Some(e)) => println!("  oci-squash failed: {e}"),
            (true, None) => {
                let t = median(peer);
                println!(
                    "{:<28} {:>9.2} {:>34.2}x slower {:>29.1}",
                    "  oci-squash (same input)",
                    t,
                    t / ours,
                    peer_rss
                )
            }
        }
        peers::docker_peer(&squash, &archive, runs, ours)?;
        println!("  buildah: needs containers-storage; not run");
        if !have("crane") {
            println!("  crane: not installed; not run");
        }
        for f in ["docker.tar", "ours-docker.tar", "oci-squash.tar"] {
            let _ = fs::remove_file(work.join(f));
        }
        if !keep {
            for t in &tars {
                fs::remove_file(t)?;
            }
        }
    }
    if many && !peers_only {
        let work = dir.join(format!("many-{scale}"));
        let _ = fs::remove_dir_all(&work);
        fs::create_dir_all(&work)?;
        let tars = squash_testkit::large::many_layers(&work, scale)?;
        let total: u64 = tars.iter().map(|t| fs::metadata(t).map(|m| m.len()).unwrap_or(0)).sum();
        println!(
            "-- many-layer image, scale {scale}: {:.0} MB uncompressed in {} layers, most of it \
             shadowed or deleted",
            total as f64 / 1e6,
            tars.len()
        );
        for kind in ["gzip", "zstd"] {
            compressed_case(&squash, &work, &tars, kind, runs, cores)?;
        }
        if !keep {
            let _ = fs::remove_dir_all(&work);
        }
    }
    Ok(())
}

/// One compressed case: the image of `tars` written as a layout of `kind` blobs, every layer
/// above layer 0 squashed `runs` times against the physical limit (decompress the range's blobs,
/// compress the new layer) and the verified limit (also the sha256 of the range's blobs, their
/// decoded layers, the new layer and its blob), then the report of the same squash, sampled and
/// `--exact`.
fn compressed_case(
    squash: &std::path::Path,
    work: &std::path::Path,
    tars: &[PathBuf],
    kind: &str,
    runs: usize,
    cores: usize,
) -> Result<()> {
    let top = (tars.len() - 1).to_string();
    let layout = work.join(format!("oci-{kind}"));
    let blobs = write_layout(&layout, tars, kind)?;
    let out = work.join(format!("out-{kind}"));
    let _ = fs::remove_dir_all(&out);
    // Each of the `runs` rounds times squash and its two reports, then the limit's commands, so
    // that the machine's drift affects both alike; medians are reported.
    let range: Vec<String> = blobs[1..].iter().map(|b| b.display().to_string()).collect();
    let decoded: Vec<String> = tars[1..].iter().map(|t| t.display().to_string()).collect();
    let new_tar = work.join("new-layer.tar");
    let (dc, c) = if kind == "gzip" {
        ("pigz -dc", format!("pigz -p{cores} -6 -n -c"))
    } else {
        ("zstd -dc -q", "zstd -T0 -3 -q -c".to_string())
    };
    let sha = measure::sha256_tool();
    let (mut ours, mut ours_cpu, mut rss) = (Vec::new(), Vec::new(), 0f64);
    let (mut decompress, mut compress, mut hash) = (Vec::new(), Vec::new(), Vec::new());
    let mut new_blob = PathBuf::new();
    // The reports' (time, peak RSS), sampled and `--exact`, timed in the same rounds as the
    // squash.
    let mut reports: [Vec<(f64, f64)>; 2] = [Vec::new(), Vec::new()];
    // Each squash run's phases, from its `--verbose` steps.
    let mut steps = Vec::new();
    for round in 0..runs {
        // squash, the sampled report and the `--exact` one, in an order that turns each round:
        // whichever runs first meets the memory the limit's commands left idle (on a machine
        // that gives idle memory back to its host, fresh pages cost system time), the others
        // the pages the one before freed. With 3 runs each takes every place once.
        for slot in 0..3 {
            match (round + slot) % 3 {
                0 => {
                    let _ = fs::remove_dir_all(&out);
                    warm(&[&layout]);
                    let ((t, r, cpu), stderr) = timed_stderr(
                        Command::new(squash)
                            .arg(format!("oci:{}:bench", layout.display()))
                            .args(["--from-layer", &top, "--verbose", "-o"])
                            .arg(format!("oci:{}:bench", out.display())),
                    )?;
                    steps.push(measure::phases(&stderr));
                    ours.push(t);
                    ours_cpu.push(cpu);
                    rss = rss.max(r);
                }
                which => {
                    let exact = which == 2;
                    let mut cmd = Command::new(squash);
                    cmd.arg("report")
                        .arg(format!("oci:{}:bench", layout.display()))
                        .args(["--from-layer", &top]);
                    if exact {
                        cmd.arg("--exact");
                    }
                    warm(&[&layout]);
                    reports[usize::from(exact)].push(timed(&mut cmd)?);
                }
            }
        }
        if round == 0 {
            new_blob = work.join(format!("new-layer.{kind}"));
            fs::copy(newest_layer_blob(&out)?, &new_blob)?;
            run_command(Command::new("sh").arg("-c").arg(format!(
                "{dc} {} > {}",
                new_blob.display(),
                new_tar.display()
            )))?;
        }
        warm(&range);
        decompress.push(timed_sh(&format!("{dc} {} > /dev/null", range.join(" ")))?);
        warm(&[&new_tar]);
        compress.push(timed_sh(&format!("{c} < {} > /dev/null", new_tar.display()))?);
        warm(&range);
        warm(&decoded);
        warm(&[&new_tar, &new_blob]);
        hash.push(timed_sh(&format!(
            "{sha} {} {} {} {} > /dev/null",
            range.join(" "),
            decoded.join(" "),
            new_tar.display(),
            new_blob.display()
        ))?);
    }
    let squash_time = median(ours);
    limit_row(
        &format!("{kind} in, {kind} out"),
        (squash_time, median(ours_cpu), rss),
        &decompress,
        &compress,
        &hash,
        cores,
    );
    measure::phase_rows("squash", &steps);
    // The limit's commands as phases, to set beside the squash's.
    let limit: Vec<Vec<(String, f64, f64)>> = (0..runs)
        .map(|i| {
            [("decoding the range", &decompress), ("compressing", &compress), ("sha256", &hash)]
                .iter()
                .map(|(name, times)| (name.to_string(), times[i].0, times[i].1))
                .collect()
        })
        .collect();
    measure::phase_rows("limit", &limit);
    fs::remove_file(&new_tar)?;
    let _ = fs::remove_file(&new_blob);
    for (exact, times) in [false, true].into_iter().zip(reports) {
        let report_time = (
            median(times.iter().map(|t| t.0).collect()),
            times.iter().map(|t| t.1).fold(0.0, f64::max),
        );
        println!(
            "{:<28} {:>9.2} {:>34.2}x the squash {:>27.1}",
            format!("  report{} ({kind})", if exact { " --exact" } else { "" }),
            report_time.0,
            report_time.0 / squash_time,
            report_time.1
        );
    }
    Ok(())
}
