//! The pass-rate chart, drawn here as SVG: a few dozen elements per chart,
//! no JavaScript and nothing to download, readable without CSS and with a
//! data table beside it for screen readers. A charting library would be
//! the only script on the site and hundreds of kilobytes to embed, for a
//! line and some bars.

use std::fmt::Write;

use maud::{Markup, html};

use crate::domain::validation::{Bucket, Granularity};

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 240.0;
const LEFT: f64 = 48.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 36.0;

/// The label of a bucket on the axis and in tooltips.
pub fn bucket_label(bucket: &Bucket, granularity: Granularity) -> String {
    let s = bucket.start.to_string();
    match granularity {
        Granularity::Hour => format!(
            "{} {}:00",
            s.get(..10).unwrap_or_default(),
            s.get(11..13).unwrap_or_default()
        ),
        Granularity::Day => s.get(..10).unwrap_or_default().to_owned(),
        Granularity::Week => format!("week of {}", s.get(..10).unwrap_or_default()),
    }
}

/// The pass rate per bucket as a line (broken where a bucket judged
/// nothing), with the number of validations per bucket as bars beneath.
pub fn pass_rate(buckets: &[Bucket], granularity: Granularity, title: &str) -> Markup {
    let n = buckets.len().max(1) as f64;
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |i: usize| LEFT + (i as f64 + 0.5) * plot_w / n;
    let y = |rate: f64| TOP + plot_h * (1.0 - rate / 100.0);
    let max_total = buckets
        .iter()
        .map(|b| b.counts.total())
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let bar_w = (plot_w / n * 0.6).max(1.0);

    // The line: one path, a new segment after each gap.
    let mut line = String::new();
    let mut pen_down = false;
    for (i, b) in buckets.iter().enumerate() {
        match b.counts.pass_rate() {
            Some(rate) => {
                let cmd = if pen_down { 'L' } else { 'M' };
                let _ = write!(line, "{cmd}{:.1},{:.1} ", x(i), y(rate));
                pen_down = true;
            }
            None => pen_down = false,
        }
    }
    let ticks = [0.0, 25.0, 50.0, 75.0, 100.0];
    let labels: Vec<usize> = match buckets.len() {
        0 => vec![],
        1 => vec![0],
        2 => vec![0, 1],
        len => vec![0, len / 2, len - 1],
    };
    html! {
        svg.chart xmlns="http://www.w3.org/2000/svg" viewBox={"0 0 " (WIDTH) " " (HEIGHT)}
            role="img" aria-labelledby="chart-title chart-desc" {
            title #chart-title { (title) }
            desc #chart-desc {
                "Share of passed validations among those judged (passed, failed, warning) per "
                (granularity.as_str()) "; grey bars show how many validations each "
                (granularity.as_str()) " had."
            }
            g.grid {
                @for t in ticks {
                    line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(y(t)) y2=(y(t)) stroke="#d0d5dd" stroke-width="1" {}
                    text x=(LEFT - 6.0) y=(y(t) + 4.0) text-anchor="end" font-size="11" fill="#3d4450" { (t) "%" }
                }
            }
            g.volume {
                @for (i, b) in buckets.iter().enumerate() {
                    @let total = b.counts.total();
                    @if total > 0 {
                        @let h = (plot_h * 0.25) * total as f64 / max_total;
                        rect x=(fmt(x(i) - bar_w / 2.0)) y=(fmt(TOP + plot_h - h)) width=(fmt(bar_w)) height=(fmt(h)) fill="#c3c9d3" {
                            title { (bucket_label(b, granularity)) ": " (total) " validations" }
                        }
                    }
                }
            }
            path.rate d=(line.trim_end()) fill="none" stroke="#1a5fb4" stroke-width="2" {}
            g.points {
                @for (i, b) in buckets.iter().enumerate() {
                    @if let Some(rate) = b.counts.pass_rate() {
                        circle cx=(fmt(x(i))) cy=(fmt(y(rate))) r="3.5" fill=(if rate < 100.0 { "#b42318" } else { "#1a5fb4" }) {
                            title {
                                (bucket_label(b, granularity)) ": " (super::format::percent(rate))
                                " passed (" (b.counts.passed) " passed, " (b.counts.failed) " failed, "
                                (b.counts.warning) " warning, " (b.counts.skipped) " skipped)"
                            }
                        }
                    }
                }
            }
            g.axis {
                line x1=(LEFT) x2=(WIDTH - RIGHT) y1=(TOP + plot_h) y2=(TOP + plot_h) stroke="#3d4450" stroke-width="1" {}
                @for i in &labels {
                    @let anchor = if *i == 0 && buckets.len() > 1 { "start" } else if *i + 1 == buckets.len() && buckets.len() > 1 { "end" } else { "middle" };
                    text x=(fmt(x(*i))) y=(HEIGHT - 12.0) text-anchor=(anchor) font-size="11" fill="#3d4450" {
                        (bucket_label(&buckets[*i], granularity))
                    }
                }
            }
        }
    }
}

fn fmt(v: f64) -> String {
    format!("{v:.1}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{time::Timestamp, validation::StatusCounts};

    fn bucket(day: &str, passed: u64, failed: u64) -> Bucket {
        Bucket {
            start: Timestamp::parse_lenient(day).unwrap(),
            counts: StatusCounts {
                passed,
                failed,
                ..StatusCounts::default()
            },
        }
    }

    #[test]
    fn the_line_breaks_where_nothing_was_judged() {
        let buckets = [
            bucket("2024-01-15", 1, 0),
            bucket("2024-01-16", 1, 1),
            bucket("2024-01-17", 0, 0),
            bucket("2024-01-18", 0, 1),
        ];
        let svg = pass_rate(&buckets, Granularity::Day, "t").into_string();
        let d = svg
            .split(" d=\"")
            .nth(1)
            .unwrap()
            .split('"')
            .next()
            .unwrap();
        assert_eq!(d.matches('M').count(), 2, "{d}");
        assert_eq!(d.matches('L').count(), 1, "{d}");
        assert_eq!(svg.matches("<circle").count(), 3);
        assert!(svg.contains("2024-01-16: 50 % passed"));
    }

    #[test]
    fn an_empty_window_still_draws_axes() {
        let svg = pass_rate(&[], Granularity::Week, "t").into_string();
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("100%"));
    }
}
