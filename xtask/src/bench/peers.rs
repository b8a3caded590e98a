//! The peers the bench runs when they are installed: docker-squash (through a Docker daemon,
//! the bench's own when none answers), compared with the same flow through squash.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Result;
use squash_testkit::engines::Docker;

use super::measure::{have, median, settle, timed_sh};
use crate::run_command;

/// Whether the daemon at `DOCKER_HOST` (or the default socket) answers.
pub(crate) fn docker_answers() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success())
}

/// A Docker daemon of the bench's own under `dir` (as the tests start theirs: no network setup,
/// overlay2), when `dockerd` is installed and the bench runs as root; else why not.
fn own_daemon(dir: &Path) -> std::result::Result<Docker, String> {
    if !have("dockerd") {
        return Err("`dockerd` is not installed (apt-get install docker.io)".into());
    }
    let uid = Command::new("id").arg("-u").output().map(|o| o.stdout).unwrap_or_default();
    if String::from_utf8_lossy(&uid).trim() != "0" {
        return Err("starting one needs root (or set DOCKER_HOST)".into());
    }
    // The testkit's start asserts that the daemon answers within a minute.
    std::panic::catch_unwind(|| Docker::start(dir))
        .map_err(|_| "the bench's own `dockerd` did not start (its log is printed above)".into())
}

/// The seconds between the first log line of docker-squash containing `from` and the first
/// after it containing `to` (its log lines start with `YYYY-MM-DD HH:MM:SS,mmm`).
pub(crate) fn log_span(log: &str, from: &str, to: &str) -> Option<f64> {
    let stamp = |line: &str| -> Option<f64> {
        let time = line.get(11..23)?;
        let (hms, ms) = time.split_once(',')?;
        let mut parts = hms.split(':').map(|p| p.parse::<f64>().ok());
        let (h, m, s) = (parts.next()??, parts.next()??, parts.next()??);
        Some(h * 3600.0 + m * 60.0 + s + ms.parse::<f64>().ok()? / 1000.0)
    };
    let mut lines = log.lines();
    let start = lines.by_ref().find(|l| l.contains(from)).and_then(stamp)?;
    let end = lines.find(|l| l.contains(to)).and_then(stamp)?;
    Some(end - start)
}

/// docker-squash (it drives the daemon: `docker save`, squash, `docker load`) against the same
/// flow through squash (`docker save | squash - -o - | docker load`), on the daemon
/// `DOCKER_HOST` names or one of the bench's own; and the squash steps alone: docker-squash's
/// from its log, squash's on the saved tarball (`ours_alone`, measured before).
pub(crate) fn docker_peer(
    squash: &Path,
    archive: &Path,
    runs: usize,
    ours_alone: f64,
) -> Result<()> {
    if !have("docker-squash") {
        println!("  docker-squash: not installed (pip install docker-squash==1.2.2); not run");
        return Ok(());
    }
    // The daemon `DOCKER_HOST` names (or the default socket), else one of the bench's own
    // beside the archive, stopped when this returns.
    let own = match have("docker") && docker_answers() {
        true => None,
        false => match own_daemon(&archive.with_file_name("dockerd")) {
            Ok(daemon) => Some(daemon),
            Err(why) => {
                println!("  docker-squash: no Docker daemon answers and {why}; not run");
                return Ok(());
            }
        },
    };
    let host = own.as_ref().map(|d| d.host().to_string());
    let docker = || {
        let mut command = Command::new("docker");
        command.envs(host.iter().map(|h| ("DOCKER_HOST", h)));
        command
    };
    let export = host.as_ref().map(|h| format!("export DOCKER_HOST='{h}'; ")).unwrap_or_default();
    run_command(docker().args(["load", "-q", "-i"]).arg(archive).stdout(Stdio::null()))?;
    let rmi = |tag: &str| {
        let _ = docker().args(["rmi", "-f", tag]).output();
    };
    let pipe = format!(
        "{export}docker save bench:latest | {} - --from-layer 4 --quiet -o \
            docker-archive:-:bench:ours | docker load -q > /dev/null",
        squash.display()
    );
    let (mut peer, mut peer_steps, mut ours, mut save) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Rounds alternate the two flows, so that the machine's drift affects both alike.
    for _ in 0..runs {
        settle();
        let start = Instant::now();
        let out = Command::new("docker-squash")
            .envs(host.iter().map(|h| ("DOCKER_HOST", h)))
            .args(["-f", "4", "-t", "bench:docker-squash", "bench:latest"])
            .output()?;
        peer.push(start.elapsed().as_secs_f64());
        let log = String::from_utf8_lossy(&out.stderr).into_owned()
            + &String::from_utf8_lossy(&out.stdout);
        if !out.status.success() {
            println!("  docker-squash failed: {}", log.lines().last().unwrap_or_default());
            rmi("bench:latest");
            return Ok(());
        }
        if let Some(t) = log_span(&log, "Squashing image", "New squashed image ID") {
            peer_steps.push(t);
        }
        rmi("bench:docker-squash");
        ours.push(timed_sh(&pipe)?.0);
        rmi("bench:ours");
        save.push(timed_sh(&format!("{export}docker save bench:latest > /dev/null"))?.0);
    }
    rmi("bench:latest");
    let (peer, ours, save) = (median(peer), median(ours), median(save));
    println!("{:<28} {:>9.2} {:>9} {:>7}", "  docker save | squash | load", ours, "", "");
    println!(
        "{:<28} {:>9.2} {:>9} {:>6.2}x",
        "  docker-squash (whole flow)",
        peer,
        "",
        peer / ours
    );
    println!("{:<28} {:>9.2}", "  docker save alone", save);
    if !peer_steps.is_empty() {
        let steps = median(peer_steps);
        println!(
            "{:<28} {:>9.2} {:>9} {:>6.2}x  (from its log; squash's is the docker-archive row)",
            "  docker-squash squash step",
            steps,
            "",
            steps / ours_alone
        );
    }
    Ok(())
}

/// Registry to registry, against the round trip it replaces (`skopeo copy` out, squash on the
/// layout, `skopeo copy` in), on the gzip image pushed to a `docker-registry` of the bench's own
/// on loopback: time, and bytes moved each way (squash's from its outcome's `transfer`;
/// skopeo's from the registry's access log).
pub(crate) fn registry_rows(squash: &Path, layout: &Path, work: &Path, runs: usize) -> Result<()> {
    if !have("docker-registry") || !have("skopeo") {
        println!("  registry rows: need docker-registry and skopeo; not run");
        return Ok(());
    }
    use squash_testkit::registry::{Auth, Registry};
    let dir = work.join("registry");
    let _ = std::fs::remove_dir_all(&dir);
    let registry = Registry::start(&dir, &Auth::None);
    let host = registry.host();
    let skopeo = |args: &[&str]| {
        run_command(
            Command::new("skopeo").arg("--insecure-policy").args(args).stdout(Stdio::null()),
        )
    };
    let source = format!("docker://{host}/bench:1");
    skopeo(&[
        "copy",
        "-q",
        "--dest-tls-verify=false",
        &format!("oci:{}:bench", layout.display()),
        &source,
    ])?;
    let downloaded = |from: usize| -> u64 {
        // The access log's lines end with the status and the bytes of the response.
        let log = registry.log();
        let mut down = 0u64;
        for line in log.lines().skip(from) {
            if line.contains("\"GET /v2/") {
                let fields: Vec<&str> =
                    line.split('"').nth(2).unwrap_or("").split_whitespace().collect();
                down += fields.get(1).and_then(|b| b.parse::<u64>().ok()).unwrap_or(0);
            }
        }
        down
    };
    let (mut ours, mut trip) = (Vec::new(), Vec::new());
    let (mut ours_moved, mut trip_down, mut below) = ((0u64, 0u64), 0u64, 0usize);
    for round in 0..runs {
        settle();
        let start = Instant::now();
        let out = Command::new(squash)
            .args([source.as_str(), "--from-layer", "4", "--json", "-q", "-o"])
            .arg(format!("docker://{host}/bench:squashed-{round}"))
            .output()?;
        ours.push(start.elapsed().as_secs_f64());
        anyhow::ensure!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let outcome: serde_json::Value = serde_json::from_slice(&out.stdout)?;
        let t = &outcome["transfer"];
        // Layers below the range that the plan had to index (and so download).
        below = outcome["layers"]
            .as_array()
            .map(|l| l.iter().filter_map(|x| x["rereads"].as_array()).map(Vec::len).sum())
            .unwrap_or(0);
        ours_moved = (
            t["downloaded_bytes"].as_u64().unwrap_or(0),
            t["uploaded_bytes"].as_u64().unwrap_or(0),
        );
        let before = registry.log().lines().count();
        let (pulled, pushed) = (work.join("trip-in"), work.join("trip-out"));
        let _ = std::fs::remove_dir_all(&pulled);
        let _ = std::fs::remove_dir_all(&pushed);
        settle();
        let start = Instant::now();
        skopeo(&[
            "copy",
            "-q",
            "--src-tls-verify=false",
            &source,
            &format!("oci:{}:bench", pulled.display()),
        ])?;
        run_command(
            Command::new(squash)
                .arg(format!("oci:{}:bench", pulled.display()))
                .args(["--from-layer", "4", "-q", "-o"])
                .arg(format!("oci:{}:bench", pushed.display())),
        )?;
        skopeo(&[
            "copy",
            "-q",
            "--dest-tls-verify=false",
            &format!("oci:{}:bench", pushed.display()),
            &format!("docker://{host}/bench:trip-{round}"),
        ])?;
        trip.push(start.elapsed().as_secs_f64());
        trip_down = downloaded(before);
        let _ = std::fs::remove_dir_all(&pulled);
        let _ = std::fs::remove_dir_all(&pushed);
    }
    let (ours, trip) = (median(ours), median(trip));
    println!(
        "{:<28} {:>9.2}   downloaded {:.1} MB, uploaded {:.1} MB; {below} layer(s) below the \
         range read for the plan",
        "registry to registry (gzip)",
        ours,
        ours_moved.0 as f64 / 1e6,
        ours_moved.1 as f64 / 1e6
    );
    println!(
        "{:<28} {:>9.2}   {:.2}x the time; downloaded {:.1} MB (the whole image), uploads the new \
         layer as squash does",
        "  skopeo out, squash, in",
        trip,
        trip / ours,
        trip_down as f64 / 1e6
    );
    drop(registry);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
