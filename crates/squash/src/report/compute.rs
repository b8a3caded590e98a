//! Computing a report: every layer indexed (a range's layers read once, as a squash reads them),
//! the whole image applied under the changeset rules to find what each layer wastes and which
//! paths waste it, the clutter that stays visible (on a thread of its own), while each range is
//! planned as a squash plans it and its new layer measured.

use std::sync::Arc;

use super::clutter::{ClutterFound, Clutterer};
use super::measure::{measure_range, How, Measurement};
use super::model::{LayerReport, RangeReport, Report, ReportOptions};
use super::sample::{default_sample_bytes, sampling_pays};
use super::story::Story;
use crate::context::Context;
use crate::error::{Error, Result};
use crate::layer::layer_index::{EntryClass, LayerIndex};
use crate::page_cache::CacheBudget;
use crate::plan::changeset::emit::plan_range;
use crate::plan::changeset::range_plan::Fate;
use crate::plan::exclude::Excludes;
use crate::plan::options::SquashOptions;
use crate::plan::planner::RangeRead;
use crate::plan::range::{resolve, LayerRange, LayerSelector};
use crate::plan::squash_plan::PlannedRange;
use crate::progress::Event;
use crate::read::image::Image;
use crate::read::once::Kept;

impl Image {
    /// Measures waste per layer and per path, and what the squash described by `options` would
    /// reclaim (default selector: everything above the base if it can be found, else above
    /// layer 0), with its compressed size estimated from samples ([`Image::report_in`]).
    ///
    /// ```no_run
    /// use squash::{Gates, Image, SquashOptions};
    ///
    /// let image = Image::open("app.tar")?;
    /// let report = image.report(&SquashOptions::default(), 10)?;
    /// let gates = Gates::new().with_max_wasted_bytes(50_000_000);
    /// for result in report.gate_results(&gates) {
    ///     println!("{result}");
    /// }
    /// # Ok::<(), squash::Error>(())
    /// ```
    pub fn report(&self, options: &SquashOptions, top_paths: usize) -> Result<Report> {
        self.report_in(
            options,
            &ReportOptions::default().with_top_paths(top_paths),
            &Context::new(),
        )
    }

    /// The report, measured as `how` says, within `context`. Every layer is indexed (a range's
    /// layers newest first, what can survive kept in unnamed temporary files in the context's
    /// temporary directory, as a squash reads them); then each range's new layer is streamed as
    /// a squash would write it into a compressor that only counts: samples of it
    /// ([`ReportOptions::exact`] off) or all of it. Nothing is written beside those temporaries,
    /// which the system removes. The context's progress hears of the indexing, then of the
    /// merges as [`Event::Measuring`] and [`Event::Advanced`], and can cancel.
    pub fn report_in(
        &self,
        options: &SquashOptions,
        how: &ReportOptions,
        context: &Context<'_>,
    ) -> Result<Report> {
        let ranges = self.ranges_to_report(options)?;
        let clutter = Clutterer::new(&how.clutter)?;
        let (indexes, kept) = self.index_for_report(&ranges, context)?;
        let base_end = ranges.first().map(|r| r.start).unwrap_or(self.layers().len());
        let non_base_uncompressed: u64 =
            indexes[base_end.min(indexes.len())..].iter().map(|i| i.uncompressed_size).sum();
        let (planned, indexes) =
            self.plan_to_report(ranges.clone(), kept, indexes, options, context)?;
        // The whole-image analysis only reads the indexes: where the thread budget gives stages
        // threads of their own, it runs on one while the ranges are measured, which keeps the
        // other cores busy; otherwise before them. Its error, if any, comes first either way.
        let (report, measured) = if context.budget().pipelined() {
            std::thread::scope(|scope| {
                let (all, ranges) = (&indexes, &ranges);
                let analysis = scope.spawn(move || self.waste(all, ranges, how, clutter));
                let measured = self.measure_ranges(&planned, &indexes, options, how, context);
                let report =
                    analysis.join().unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (report, measured)
            })
        } else {
            let report = self.waste(&indexes, &ranges, how, clutter)?;
            (Ok(report), self.measure_ranges(&planned, &indexes, options, how, context))
        };
        let mut report = report?;
        for (planned, measured) in planned.iter().zip(measured?) {
            let range_indexes = &indexes[planned.range.start..=planned.range.end];
            for (offset, (index, (written, compressed))) in
                range_indexes.iter().zip(&measured.per_layer).enumerate()
            {
                let layer = &mut report.layers[planned.range.start + offset];
                layer.reclaimed_bytes = index.uncompressed_size.saturating_sub(*written);
                layer.reclaimed_compressed_bytes =
                    index.compressed_size.saturating_sub(*compressed);
            }
            let before = planned.uncompressed_size_before();
            let reclaimed = before.saturating_sub(planned.uncompressed_size());
            report.squash.push(RangeReport {
                range: planned.range.clone(),
                compressed_size_before: planned.compressed_size_before(),
                uncompressed_size_before: before,
                uncompressed_size_after: planned.uncompressed_size(),
                compressed_size_after_estimate: measured.compressed_size,
                compression: planned.compression,
                sampled_bytes: measured.sampled,
                compressed_size_after_exact: measured.exact.then_some(measured.compressed_size),
                digest_after: measured.digest,
                reclaimed_percent: if non_base_uncompressed == 0 {
                    0.0
                } else {
                    100.0 * reclaimed as f64 / non_base_uncompressed as f64
                },
                excluded: planned.excluded().to_vec(),
            });
        }
        Ok(report)
    }

    /// Measures the new layer of each planned range, as `how` says; `indexes` are every
    /// layer's, the ranges' included.
    fn measure_ranges(
        &self,
        planned: &[PlannedRange],
        indexes: &[LayerIndex],
        options: &SquashOptions,
        how: &ReportOptions,
        context: &Context<'_>,
    ) -> Result<Vec<Measurement>> {
        let progress = context.progress();
        progress.event(&Event::Measuring {
            total: planned.iter().map(|p| p.uncompressed_size()).sum(),
        });
        let mut measured = Vec::with_capacity(planned.len());
        for planned in planned {
            progress.step(format!("measuring the new layer for {}", planned.range));
            let sample_bytes = how
                .sample_bytes
                .unwrap_or_else(|| default_sample_bytes(planned.compression, options.level));
            // Without a sample size of the caller's, a layer larger than the sample whose
            // estimate would cost more than compressing it whole is measured whole (its digest
            // left out: hashing is work the estimate did not ask for).
            let whole = how.sample_bytes.is_none()
                && planned.uncompressed_size() > sample_bytes
                && !sampling_pays(
                    planned.compression,
                    options.level,
                    planned.uncompressed_size(),
                    sample_bytes,
                );
            measured.push(measure_range(
                self,
                planned,
                &indexes[planned.range.start..=planned.range.end],
                options.level,
                How { sample_bytes, exact: how.exact || whole, digest: how.exact },
                context,
            )?);
        }
        Ok(measured)
    }

    /// The ranges the options describe; with no selector, everything above the base when it can
    /// be found, else above layer 0.
    fn ranges_to_report(&self, options: &SquashOptions) -> Result<Vec<LayerRange>> {
        let count = self.layers().len();
        Ok(match &options.selector {
            LayerSelector::Nothing => match resolve(self, &LayerSelector::Base, &options.bases) {
                Ok(r) => r,
                Err(_) if count > 1 => {
                    vec![LayerRange {
                        first_step: None,
                        start: 1,
                        end: count - 1,
                        reason: "every layer above layer 0 (no base image found)".into(),
                    }]
                }
                Err(_) => Vec::new(),
            },
            selector => resolve(self, selector, &options.bases)?,
        })
    }

    /// Every layer's index, in image order: the layers outside the ranges indexed in parallel,
    /// each range read once, its surviving entries kept for measuring the new layer without
    /// decoding them again.
    fn index_for_report(
        &self,
        ranges: &[LayerRange],
        context: &Context<'_>,
    ) -> Result<(Vec<LayerIndex>, Vec<RangeKept>)> {
        let count = self.layers().len();
        let in_range = |l: usize| ranges.iter().any(|r| (r.start..=r.end).contains(&l));
        let outside: Vec<usize> = (0..count).filter(|&l| !in_range(l)).collect();
        let mut slots: Vec<Option<LayerIndex>> = (0..count).map(|_| None).collect();
        for (l, index) in outside.iter().zip(self.index_layers_filtered(
            outside.iter().copied(),
            context,
            None,
            true,
        )?) {
            slots[*l] = Some(index);
        }
        let mut kept = Vec::with_capacity(ranges.len());
        let cache = CacheBudget::for_kept_copies();
        for r in ranges {
            let (range_indexes, range_kept) =
                self.index_range_once(r.start..=r.end, (context, &cache), true)?;
            for (offset, index) in range_indexes.into_iter().enumerate() {
                slots[r.start + offset] = Some(index);
            }
            kept.push(Arc::new(range_kept));
        }
        let indexes = slots
            .into_iter()
            .enumerate()
            .map(|(l, index)| {
                index.ok_or_else(|| Error::InvalidRange {
                    reason: format!("internal error: layer {l} was not indexed"),
                })
            })
            .collect::<Result<_>>()?;
        Ok((indexes, kept))
    }

    /// The figures of the image as it is: what each layer wastes and keeps, the paths that waste
    /// the most, the clutter that stays visible. The squash figures are left empty.
    fn waste(
        &self,
        indexes: &[LayerIndex],
        ranges: &[LayerRange],
        how: &ReportOptions,
        clutter: Clutterer,
    ) -> Result<Report> {
        let count = indexes.len();
        let base_end = ranges.first().map(|r| r.start).unwrap_or(count);
        let in_range = |l: usize| ranges.iter().any(|r| (r.start..=r.end).contains(&l));
        let whole = plan_range(indexes, &Default::default(), &Default::default())?;
        let mut layers = Vec::with_capacity(count);
        let mut changed = vec![0usize; count];
        for fate in whole.fates.iter().flatten() {
            if let Fate::Replaced { by } = fate {
                changed[*by] += 1;
            }
        }
        let created_by: Vec<Option<String>> = (0..count)
            .map(|l| {
                self.layers()[l]
                    .history_index()
                    .and_then(|h| self.history().get(h))
                    .and_then(|h| h.created_by.clone())
            })
            .collect();
        let mut clutter_found = ClutterFound::default();
        let (mut wasted_total, mut wasted_non_base, mut kept_total, mut non_base_total) =
            (0u64, 0u64, 0u64, 0u64);
        for (l, index) in indexes.iter().enumerate() {
            let (mut wasted, mut kept, mut nodes, mut markers) = (0u64, 0u64, 0usize, 0usize);
            for (e, fate) in whole.fates[l].iter().enumerate() {
                let bytes = index.entries[e].file_bytes();
                match index.entries[e].class {
                    EntryClass::Node(_) => nodes += 1,
                    EntryClass::Whiteout(_) | EntryClass::Opaque(_) => markers += 1,
                    EntryClass::Ignored => {}
                }
                if fate.is_dropped() {
                    wasted += bytes;
                } else {
                    kept += bytes;
                    if bytes > 0 {
                        clutter.visit(
                            &index.entries[e].path,
                            l,
                            bytes,
                            in_range(l),
                            &mut clutter_found,
                        );
                    }
                }
            }
            let base = l < base_end;
            wasted_total += wasted;
            kept_total += kept;
            if !base {
                wasted_non_base += wasted;
                non_base_total += wasted + kept;
            }
            layers.push(LayerReport {
                index: l,
                created_by: created_by[l].clone(),
                compressed_size: index.compressed_size,
                uncompressed_size: index.uncompressed_size,
                added: nodes.saturating_sub(changed[l]),
                changed: changed[l],
                deleted: markers,
                wasted_bytes: wasted,
                kept_bytes: kept,
                base,
                reclaimed_bytes: 0,
                reclaimed_compressed_bytes: 0,
            });
        }
        let told =
            Story { indexes, fates: &whole.fates, created_by: &created_by, base_end }.tell(how);
        drop(whole);
        let total = wasted_total + kept_total;
        let (clutter, clutter_paths) = clutter_found.finish(&how.clutter, how.top_paths);
        Ok(Report {
            layers,
            causes: told.causes,
            wasted_paths: told.rows,
            wasted_bytes: wasted_total,
            wasted_bytes_non_base: wasted_non_base,
            wasted_percent: if non_base_total == 0 {
                0.0
            } else {
                100.0 * wasted_non_base as f64 / non_base_total as f64
            },
            efficiency: if total == 0 { 1.0 } else { kept_total as f64 / total as f64 },
            squash: Vec::new(),
            clutter_bytes: clutter.iter().map(|c| c.bytes).sum(),
            clutter_bytes_non_base: clutter
                .iter()
                .flat_map(|c| &c.layers)
                .filter(|l| l.layer >= base_end)
                .map(|l| l.bytes)
                .sum(),
            clutter,
            clutter_paths,
        })
    }

    /// Plans every range as a squash plans it, from the indexes the report holds: a range's
    /// own indexes and kept copies, and the whole indexes of every layer below it, which the
    /// plan asks instead of reading those layers again. Every range is planned before any is
    /// measured, so that a bad range fails before a layer is read again.
    fn plan_to_report(
        &self,
        ranges: Vec<LayerRange>,
        kept: Vec<RangeKept>,
        mut indexes: Vec<LayerIndex>,
        options: &SquashOptions,
        context: &Context<'_>,
    ) -> Result<(Vec<PlannedRange>, Vec<LayerIndex>)> {
        let exclude = Excludes::new(&options.excludes)?;
        let mut planned = Vec::with_capacity(ranges.len());
        // Last range first, so that taking its indexes out leaves the others' positions.
        for (range, kept) in ranges.into_iter().zip(kept).rev() {
            let taken: Vec<LayerIndex> = indexes.drain(range.start..=range.end).collect();
            let below = &mut indexes[..range.start];
            let read = RangeRead { range, indexes: taken, kept: Some(kept) };
            planned.push(self.plan_range(read, Some(below), options, &exclude, context)?);
        }
        planned.reverse();
        // The ranges' indexes back into the whole list, first range first (each goes where its
        // layers are, the earlier ranges' already back), so that one list is read by the
        // analysis and the measures alike. The planned ranges keep no index, only the sizes
        // counted when they were planned.
        for planned in &mut planned {
            let start = planned.range.start;
            indexes.splice(start..start, std::mem::take(&mut planned.indexes));
        }
        Ok((planned, indexes))
    }
}

/// What a range's one read kept, layer by layer.
type RangeKept = Arc<Vec<Kept>>;
