//! Text tables: one run's per-operation figures, and the side-by-side comparison.
//!
//! Tables are Markdown (comfy-table's `ASCII_MARKDOWN` preset) so they read well on a terminal
//! and paste unchanged into notes and `docs/BENCHMARKS.md`. Ratios are always `TinyKV / etcd`.

use comfy_table::{presets, CellAlignment, Table};

use super::{ratio, BenchResult, Comparison, Figures, Target};

fn table(header: Vec<&str>) -> Table {
    let mut t = Table::new();
    t.load_preset(presets::ASCII_MARKDOWN);
    let columns = header.len();
    t.set_header(header);
    for i in 1..columns {
        if let Some(c) = t.column_mut(i) {
            c.set_cell_alignment(CellAlignment::Right);
        }
    }
    t
}

/// Thousands separators for a rate: `12345.6` → `12,346`.
pub fn thousands(x: f64) -> String {
    let digits = format!("{:.0}", x.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Milliseconds with precision that suits the magnitude.
pub fn ms(x: f64) -> String {
    if x < 10.0 {
        format!("{x:.2}")
    } else if x < 100.0 {
        format!("{x:.1}")
    } else {
        format!("{x:.0}")
    }
}

fn times(r: Option<f64>) -> String {
    r.map_or_else(|| "-".into(), |r| format!("{r:.2}×"))
}

fn or_dash<T>(v: Option<T>, f: impl Fn(T) -> String) -> String {
    v.map_or_else(|| "-".into(), f)
}

/// One run: a line per operation kind and a total.
pub fn render_run(run: &BenchResult) -> String {
    let mut t = table(vec![
        "op",
        "ok",
        "errors",
        "not found",
        "ops/s",
        "mean ms",
        "p50",
        "p95",
        "p99",
        "p99.9",
        "max",
    ]);
    let r = &run.result;
    let lines = r.per_op.iter().chain(std::iter::once(&r.total));
    for s in lines {
        let l = &s.latency;
        t.add_row(vec![
            s.op.clone(),
            s.ok.to_string(),
            s.errors.to_string(),
            s.not_found.to_string(),
            thousands(s.ops_per_sec),
            ms(l.mean_ms),
            ms(l.p50_ms),
            ms(l.p95_ms),
            ms(l.p99_ms),
            ms(l.p999_ms),
            ms(l.max_ms),
        ]);
    }
    let mut out = format!(
        "{} ({:?}, {} clients, {:.1} s measured)\n{t}\n",
        run.id, run.target.kind, run.run.concurrency, r.elapsed_secs
    );
    match r.server_cpu_us_per_op {
        Some(us) => out.push_str(&format!(
            "server CPU: {:.2} s total, {us:.0} µs/op; client CPU: {:.0} µs/op\n",
            r.cpu.server_seconds, r.client_cpu_us_per_op
        )),
        None => out.push_str(&format!(
            "server CPU: not measured (no --server-pid); client CPU: {:.0} µs/op\n",
            r.client_cpu_us_per_op
        )),
    }
    for e in &r.error_samples {
        out.push_str(&format!("error: {e}\n"));
    }
    out
}

/// The side-by-side table, then how each row fares against its target, then any failures.
pub fn render_comparison(cmp: &Comparison) -> String {
    let mut t = table(vec![
        "workload",
        "etcd ops/s",
        "TinyKV ops/s",
        "×",
        "etcd p50 / p99 ms",
        "TinyKV p50 / p99 ms",
        "p99 ×",
        "etcd CPU µs/op",
        "TinyKV CPU µs/op",
        "CPU ×",
    ]);
    let latency = |f: Figures| format!("{} / {}", ms(f.p50_ms), ms(f.p99_ms));
    let mut verdicts = Vec::new();
    let mut error_notes = Vec::new();
    for row in &cmp.rows {
        let (etcd, tinykv) = cmp.figures(row);
        let tput = ratio(tinykv.map(|f| f.ops_per_sec), etcd.map(|f| f.ops_per_sec));
        let p99 = ratio(tinykv.map(|f| f.p99_ms), etcd.map(|f| f.p99_ms));
        let cpu = ratio(
            tinykv.and_then(|f| f.cpu_us_per_op),
            etcd.and_then(|f| f.cpu_us_per_op),
        );
        t.add_row(vec![
            row.title.clone(),
            or_dash(etcd, |f| thousands(f.ops_per_sec)),
            or_dash(tinykv, |f| thousands(f.ops_per_sec)),
            times(tput),
            or_dash(etcd, latency),
            or_dash(tinykv, latency),
            times(p99),
            or_dash(etcd.and_then(|f| f.cpu_us_per_op), |c| format!("{c:.0}")),
            or_dash(tinykv.and_then(|f| f.cpu_us_per_op), |c| format!("{c:.0}")),
            times(cpu),
        ]);
        if let Some(target) = row.target {
            verdicts.push(format!(
                "- {}: {}",
                row.title,
                verdict(target, tput, p99, cpu)
            ));
        }
        for (system, f) in [("etcd", etcd), ("TinyKV", tinykv)] {
            if let Some(f) = f.filter(|f| f.errors > 0) {
                error_notes.push(format!(
                    "- {}: {system} had {} failed operations",
                    row.title, f.errors
                ));
            }
        }
    }
    let mut out = format!("{t}\n");
    if !verdicts.is_empty() {
        out.push_str("\nTargets (TinyKV / etcd):\n");
        for v in verdicts {
            out.push_str(&v);
            out.push('\n');
        }
    }
    if !error_notes.is_empty() {
        out.push_str("\nErrors:\n");
        for n in error_notes {
            out.push_str(&n);
            out.push('\n');
        }
    }
    if !cmp.failures.is_empty() {
        out.push_str("\nRuns that failed:\n");
        for (id, e) in &cmp.failures {
            out.push_str(&format!("- {id}: {e}\n"));
        }
    }
    out
}

/// "throughput 3.20× (≥ 3×: met), p99 0.91× (≤ 1×: met), CPU 0.42× (≤ 0.5×: met)".
fn verdict(target: Target, tput: Option<f64>, p99: Option<f64>, cpu: Option<f64>) -> String {
    let mut parts = Vec::new();
    let mut check = |name: &str, value: Option<f64>, bound: Option<f64>, at_least: bool| {
        let Some(bound) = bound else { return };
        let (sign, met) = match value {
            Some(v) if at_least => ("≥", Some(v >= bound)),
            Some(v) => ("≤", Some(v <= bound)),
            None => (if at_least { "≥" } else { "≤" }, None),
        };
        let state = match met {
            Some(true) => "met",
            Some(false) => "MISSED",
            None => "not measured",
        };
        parts.push(format!(
            "{name} {} ({sign} {bound}×: {state})",
            times(value)
        ));
    };
    check("throughput", tput, target.min_throughput_ratio, true);
    check("p99", p99, target.max_p99_ratio, false);
    check("CPU", cpu, target.max_cpu_ratio, false);
    parts.join(", ")
}

#[cfg(test)]
mod tests {
    use super::super::test_util;
    use super::*;

    #[test]
    fn number_formats() {
        assert_eq!(thousands(0.0), "0");
        assert_eq!(thousands(999.4), "999");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(ms(1.234), "1.23");
        assert_eq!(ms(33.36), "33.4");
        assert_eq!(ms(250.0), "250");
    }

    #[test]
    fn comparison_table_has_ratios_and_verdicts() {
        let cmp = test_util::comparison();
        let text = render_comparison(&cmp);
        let put = text
            .lines()
            .find(|l| l.contains("raw put, 64 clients"))
            .unwrap();
        for cell in [
            "5,500",
            "17,600",
            "3.20×",
            "8.25 / 33.0",
            "7.50 / 30.0",
            "0.91×",
            "240",
            "100",
            "0.42×",
        ] {
            assert!(put.contains(cell), "{cell} missing from {put}");
        }
        // The etcd-only row shows dashes for TinyKV and no ratio.
        let sget = text
            .lines()
            .find(|l| l.contains("serializable get"))
            .unwrap();
        assert!(
            sget.contains("10,700") && sget.matches(" - ").count() >= 3,
            "{sget}"
        );
        assert!(
            text.contains(
                "throughput 3.20× (≥ 3×: met), p99 0.91× (≤ 1×: met), CPU 0.42× (≤ 0.5×: met)"
            ),
            "{text}"
        );
    }

    #[test]
    fn missed_targets_errors_and_failures_are_reported() {
        let mut cmp = test_util::comparison();
        let slow = cmp
            .runs
            .iter_mut()
            .find(|r| r.id == "tinykv/put-64")
            .unwrap();
        slow.result.total.ops_per_sec = 6_000.0;
        slow.result.total.errors = 7;
        cmp.failures
            .push(("tinykv/get-64".into(), "cluster did not start".into()));
        let text = render_comparison(&cmp);
        assert!(text.contains("throughput 1.09× (≥ 3×: MISSED)"), "{text}");
        assert!(text.contains("TinyKV had 7 failed operations"), "{text}");
        assert!(
            text.contains("- tinykv/get-64: cluster did not start"),
            "{text}"
        );
    }

    #[test]
    fn run_table_lists_each_op_and_cpu() {
        let run = test_util::result(
            "etcd/put-1",
            crate::config::TargetKind::Etcd,
            810.0,
            2.6,
            240.0,
        );
        let text = render_run(&run);
        assert!(text.contains("UPDATE") && text.contains("TOTAL"), "{text}");
        assert!(text.contains("240 µs/op"), "{text}");
    }
}
