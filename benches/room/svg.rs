//! Small line charts as SVG text, side by side with one legend: enough for
//! the scale run's few points, without a plotting crate.

use std::fmt::Write;

pub struct Chart {
    pub title: String,
    pub unit: String,
    pub series: Vec<Series>,
}

pub struct Series {
    pub label: String,
    /// Any SVG colour.
    pub color: &'static str,
    /// (members, value), in order of members.
    pub points: Vec<(f64, f64)>,
}

const WIDTH: f64 = 320.0;
const HEIGHT: f64 = 240.0;
const LEGEND: f64 = 30.0;
/// Room inside each chart for the axes' labels.
const LEFT: f64 = 56.0;
const RIGHT: f64 = 14.0;
const TOP: f64 = 28.0;
const BOTTOM: f64 = 40.0;

/// All the charts in one row, with a legend above them.
pub fn render(charts: &[Chart]) -> String {
    let total = WIDTH * charts.len() as f64;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="{}" viewBox="0 0 {total} {}" font-family="sans-serif" font-size="11">"#,
        HEIGHT + LEGEND,
        HEIGHT + LEGEND
    );
    let _ = writeln!(svg, r#"<rect width="100%" height="100%" fill="white"/>"#);
    if let Some(first) = charts.first() {
        let mut x = 10.0;
        for series in &first.series {
            let _ = writeln!(
                svg,
                r#"<line x1="{x}" y1="15" x2="{}" y2="15" stroke="{}" stroke-width="2"/><circle cx="{}" cy="15" r="3" fill="{}"/><text x="{}" y="19">{}</text>"#,
                x + 24.0,
                series.color,
                x + 12.0,
                series.color,
                x + 30.0,
                escape(&series.label)
            );
            x += 30.0 + 7.0 * series.label.len() as f64 + 20.0;
        }
    }
    for (i, chart) in charts.iter().enumerate() {
        let _ = writeln!(
            svg,
            r#"<g transform="translate({},{LEGEND})">"#,
            WIDTH * i as f64
        );
        chart.draw(&mut svg);
        let _ = writeln!(svg, "</g>");
    }
    svg.push_str("</svg>\n");
    svg
}

impl Chart {
    fn draw(&self, svg: &mut String) {
        let points = self.series.iter().flat_map(|s| &s.points);
        let x_max = points.clone().map(|p| p.0).fold(0.0, f64::max);
        let y_max = points.map(|p| p.1).fold(0.0, f64::max);
        // From zero, so that the charts do not exaggerate differences.
        let (x_step, x_top) = ticks(x_max);
        let (y_step, y_top) = ticks(y_max);
        let (plot_w, plot_h) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
        let x = |v: f64| LEFT + v / x_top * plot_w;
        let y = |v: f64| TOP + plot_h - v / y_top * plot_h;
        let _ = writeln!(
            svg,
            r#"<text x="{}" y="16" text-anchor="middle" font-size="13" font-weight="bold">{}</text>"#,
            WIDTH / 2.0,
            escape(&format!("{} ({})", self.title, self.unit))
        );
        let mut tick = 0.0;
        while tick <= y_top * 1.0001 {
            let _ = writeln!(
                svg,
                r##"<line x1="{LEFT}" y1="{0}" x2="{1}" y2="{0}" stroke="#ddd"/><text x="{2}" y="{3}" text-anchor="end">{4}</text>"##,
                y(tick),
                LEFT + plot_w,
                LEFT - 4.0,
                y(tick) + 4.0,
                number(tick)
            );
            tick += y_step;
        }
        let mut tick = 0.0;
        while tick <= x_top * 1.0001 {
            let _ = writeln!(
                svg,
                r##"<line x1="{0}" y1="{1}" x2="{0}" y2="{2}" stroke="#999"/><text x="{0}" y="{3}" text-anchor="middle">{4}</text>"##,
                x(tick),
                TOP + plot_h,
                TOP + plot_h + 4.0,
                TOP + plot_h + 16.0,
                number(tick)
            );
            tick += x_step;
        }
        let _ = writeln!(
            svg,
            r##"<path d="M{LEFT},{TOP} V{0} H{1}" fill="none" stroke="#333"/><text x="{2}" y="{3}" text-anchor="middle">members</text>"##,
            TOP + plot_h,
            LEFT + plot_w,
            LEFT + plot_w / 2.0,
            HEIGHT - 8.0
        );
        for series in &self.series {
            let path: Vec<String> = series
                .points
                .iter()
                .map(|&(px, py)| format!("{:.1},{:.1}", x(px), y(py)))
                .collect();
            if path.len() > 1 {
                let _ = writeln!(
                    svg,
                    r#"<polyline points="{}" fill="none" stroke="{}" stroke-width="2"/>"#,
                    path.join(" "),
                    series.color
                );
            }
            for &(px, py) in &series.points {
                let _ = writeln!(
                    svg,
                    r#"<circle cx="{:.1}" cy="{:.1}" r="3" fill="{}"><title>{}: {} members, {} {}</title></circle>"#,
                    x(px),
                    y(py),
                    series.color,
                    escape(&series.label),
                    px,
                    number(py),
                    escape(&self.unit)
                );
            }
        }
    }
}

/// A round step for about five ticks up to at least `max`, and the top.
fn ticks(max: f64) -> (f64, f64) {
    if max <= 0.0 || !max.is_finite() {
        return (1.0, 1.0);
    }
    let rough = max / 5.0;
    let power = 10f64.powf(rough.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|&s| s >= rough)
        .unwrap_or(10.0 * power);
    (step, (max / step).ceil() * step)
}

fn number(v: f64) -> String {
    match v.abs() {
        a if a >= 10_000.0 => format!("{:.0}k", v / 1000.0),
        a if a >= 100.0 || v == v.round() => format!("{v:.0}"),
        a if a >= 1.0 => format!("{v:.1}"),
        _ => format!("{v:.2}"),
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}
