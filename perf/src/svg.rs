//! A small hand-written SVG chart: one panel per figure (requests/sec, p99),
//! one row per workload, one bar per server. No drawing crate needed.

use std::fmt::Write as _;

/// One panel of horizontal bars.
pub(crate) struct Panel {
    pub(crate) title: String,
    /// Value of each workload row for each server (`None`: not measured).
    pub(crate) values: Vec<[Option<f64>; 2]>,
}

const COLORS: [&str; 2] = ["#4e79a7", "#f28e2b"];
const LABEL_W: f64 = 230.0;
const BAR_W: f64 = 330.0;
const PANEL_W: f64 = LABEL_W + BAR_W + 90.0;
const ROW_H: f64 = 30.0;
const BAR_H: f64 = 11.0;
const TOP: f64 = 70.0;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn fmt_value(v: f64) -> String {
    if v >= 100.0 {
        format!("{v:.0}")
    } else if v >= 10.0 {
        format!("{v:.1}")
    } else {
        format!("{v:.2}")
    }
}

/// Renders the panels side by side; `rows` are the workload labels, `series`
/// the two servers' names (legend).
pub(crate) fn chart(title: &str, rows: &[String], series: [&str; 2], panels: &[Panel]) -> String {
    let width = PANEL_W * panels.len() as f64 + 20.0;
    let height = TOP + ROW_H * rows.len() as f64 + 30.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="10" y="22" font-size="16" font-weight="bold">{}</text>"#,
        esc(title)
    );
    for (i, name) in series.iter().enumerate() {
        let x = 10.0 + i as f64 * 260.0;
        let _ = writeln!(
            s,
            r#"<rect x="{x}" y="32" width="12" height="12" fill="{}"/><text x="{}" y="43">{}</text>"#,
            COLORS[i],
            x + 17.0,
            esc(name)
        );
    }
    for (p, panel) in panels.iter().enumerate() {
        let x0 = 10.0 + p as f64 * PANEL_W;
        let _ = writeln!(
            s,
            r#"<text x="{}" y="{}" font-weight="bold">{}</text>"#,
            x0 + LABEL_W,
            TOP - 8.0,
            esc(&panel.title)
        );
        let max = panel
            .values
            .iter()
            .flat_map(|v| v.iter().flatten())
            .fold(0.0f64, |m, v| m.max(*v));
        for (r, label) in rows.iter().enumerate() {
            let y = TOP + r as f64 * ROW_H;
            if p == 0 {
                let _ = writeln!(
                    s,
                    r#"<text x="{}" y="{}" text-anchor="end">{}</text>"#,
                    x0 + LABEL_W - 8.0,
                    y + BAR_H + 4.0,
                    esc(label)
                );
            }
            let vals = panel.values.get(r).copied().unwrap_or([None, None]);
            for (k, v) in vals.iter().enumerate() {
                let by = y + k as f64 * (BAR_H + 1.0);
                match v {
                    Some(v) if max > 0.0 => {
                        let w = (v / max * BAR_W).max(1.0);
                        let _ = writeln!(
                            s,
                            r#"<rect x="{}" y="{by}" width="{w:.1}" height="{BAR_H}" fill="{}"/><text x="{}" y="{}" font-size="10">{}</text>"#,
                            x0 + LABEL_W,
                            COLORS[k],
                            x0 + LABEL_W + w + 4.0,
                            by + BAR_H - 1.5,
                            fmt_value(*v)
                        );
                    }
                    _ => {
                        let _ = writeln!(
                            s,
                            r##"<text x="{}" y="{}" font-size="10" fill="#999">n/a</text>"##,
                            x0 + LABEL_W + 2.0,
                            by + BAR_H - 1.5
                        );
                    }
                }
            }
        }
        let _ = writeln!(
            s,
            r##"<line x1="{x}" y1="{}" x2="{x}" y2="{}" stroke="#333"/>"##,
            TOP - 4.0,
            TOP + ROW_H * rows.len() as f64,
            x = x0 + LABEL_W
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_a_bar_per_value_and_escapes_labels() {
        let rows = vec!["put <1 client>".to_string(), "range".to_string()];
        let panels = [Panel {
            title: "Requests/sec".into(),
            values: vec![[Some(100.0), Some(250.0)], [Some(5.0), None]],
        }];
        let svg = chart("t & u", &rows, ["etcd", "cairn"], &panels);
        assert!(svg.starts_with("<svg"));
        assert!(svg.trim_end().ends_with("</svg>"));
        assert!(svg.contains("put &lt;1 client&gt;"));
        assert!(svg.contains("t &amp; u"));
        // 3 bars + 2 legend squares + background.
        assert_eq!(svg.matches("<rect").count(), 3 + 2 + 1);
        assert!(svg.contains(">n/a<"));
        // The largest value gets the full bar width.
        assert!(svg.contains(&format!(r#"width="{BAR_W:.1}""#)));
    }
}
