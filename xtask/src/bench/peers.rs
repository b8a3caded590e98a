//! The peers the bench runs when they are installed: docker-squash (through a Docker daemon),
//! compared with the same flow through squash.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::Result;

use super::measure::{have, median, settle, timed_sh};
use crate::run_command;

/// Whether the daemon at `DOCKER_HOST` (or the default socket) answers.
pub(crate) fn docker_answers() -> bool {
    Command::new("docker")
        .args(["version", "--format", "{{.Server.Version}}"])
        .output()
        .is_ok_and(|o| o.status.success())
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
/// flow through squash (`docker save | squash - -o - | docker load`), when `DOCKER_HOST`
/// answers; and the squash steps alone: docker-squash's from its log, squash's on the saved
/// tarball (`ours_alone`, measured before).
pub(crate) fn docker_peer(
    squash: &Path,
    archive: &Path,
    runs: usize,
    ours_alone: f64,
) -> Result<()> {
    if !have("docker") || !docker_answers() {
        println!("  docker-squash: no Docker daemon answers (set DOCKER_HOST); not run");
        return Ok(());
    }
    if !have("docker-squash") {
        println!("  docker-squash: not installed (pip install docker-squash==1.2.2); not run");
        return Ok(());
    }
    run_command(
        Command::new("docker").args(["load", "-q", "-i"]).arg(archive).stdout(Stdio::null()),
    )?;
    let rmi = |tag: &str| {
        let _ = Command::new("docker").args(["rmi", "-f", tag]).output();
    };
    let pipe = format!(
        "docker save bench:latest | {} - --from-layer 4 --quiet -o docker-archive:-:bench:ours | \
            docker load -q > /dev/null",
        squash.display()
    );
    let (mut peer, mut peer_steps, mut ours, mut save) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    // Rounds alternate the two flows, so that the machine's drift affects both alike.
    for _ in 0..runs {
        settle();
        let start = Instant::now();
        let out = Command::new("docker-squash")
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
        save.push(timed_sh("docker save bench:latest > /dev/null")?.0);
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
