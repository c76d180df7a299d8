//! KL divergence from a base run, with the statistics llama-perplexity prints for
//! `--kl-divergence`, computed the same way (f32 per token, sums in f64) so the
//! two tools' figures are comparable.

use serde::Serialize;

use super::logits_file::Record;

/// Running sums over scored positions.
#[derive(Clone, Debug, Default)]
pub struct Accum {
    sum_nll: f64,
    sum_nll2: f64,
    sum_nll_base: f64,
    sum_nll_base2: f64,
    sum_nll_nll_base: f64,
    sum_kld: f64,
    sum_kld2: f64,
    sum_p_diff: f64,
    sum_p_diff2: f64,
    sum_p_diff4: f64,
    n_same_top: usize,
    count: usize,
    /// Each position's KL divergence.
    klds: Vec<f32>,
    /// Each position's Δp (probability of the actual next token, ours minus base).
    p_diffs: Vec<f32>,
}

impl Accum {
    /// Adds one position: our `logits`, the base's `record`, the actual `next` token.
    pub fn add(&mut self, logits: &[f32], base: &Record, next: usize) {
        let mut max = logits[0];
        let mut imax = 0;
        for (i, &l) in logits.iter().enumerate().skip(1) {
            if l > max {
                max = l;
                imax = i;
            }
        }
        let sum_exp: f64 = logits.iter().map(|&l| f64::from((l - max).exp())).sum();
        let log_sum_exp = sum_exp.ln() as f32;
        let nll = max + log_sum_exp - logits[next];
        let nll_base = -base.log_prob(next);
        self.sum_nll += f64::from(nll);
        self.sum_nll2 += f64::from(nll * nll);
        self.sum_nll_base += f64::from(nll_base);
        self.sum_nll_base2 += f64::from(nll_base * nll_base);
        self.sum_nll_nll_base += f64::from(nll * nll_base);

        let log_norm = max + log_sum_exp;
        let (mut kld, mut imax_base, mut best) = (0.0f64, 0usize, f32::NEG_INFINITY);
        for (i, &l) in logits.iter().enumerate() {
            let lp_base = base.log_prob(i);
            if i == 0 || lp_base > best {
                best = lp_base;
                imax_base = i;
            }
            // Below e^-16 a base probability adds nothing measurable (llama.cpp's cut).
            if lp_base > -16.0 {
                kld += f64::from(lp_base.exp() * (lp_base - l + log_norm));
            }
        }
        self.sum_kld += kld;
        self.sum_kld2 += kld * kld;
        self.n_same_top += usize::from(imax == imax_base);
        self.count += 1;
        let p_diff = (-nll).exp() - (-nll_base).exp();
        let d2 = f64::from(p_diff * p_diff);
        self.sum_p_diff += f64::from(p_diff);
        self.sum_p_diff2 += d2;
        self.sum_p_diff4 += d2 * d2;
        self.klds.push(kld as f32);
        self.p_diffs.push(p_diff);
    }

    /// Positions added.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The running mean KL divergence.
    pub fn mean_kld(&self) -> f64 {
        mean_and_error(self.sum_kld, self.sum_kld2, self.count).0
    }

    /// The statistics over everything added.
    pub fn summary(&self) -> Summary {
        let n = self.count;
        let (log_ppl, log_ppl_err) = mean_and_error(self.sum_nll, self.sum_nll2, n);
        let (log_base, log_base_err) = mean_and_error(self.sum_nll_base, self.sum_nll_base2, n);
        let cov = if n < 10 {
            0.0
        } else {
            (self.sum_nll_nll_base / n as f64 - (self.sum_nll / n as f64) * (self.sum_nll_base / n as f64))
                / (n - 1) as f64
        };
        let ratio_err = (log_ppl_err * log_ppl_err + log_base_err * log_base_err - 2.0 * cov).max(0.0).sqrt();
        let (ppl, ppl_base) = (log_ppl.exp(), log_base.exp());
        let (ppl_err, ppl_base_err) = (ppl * log_ppl_err, ppl_base * log_base_err);
        let (kld, kld_err) = mean_and_error(self.sum_kld, self.sum_kld2, n);
        let (p_diff, p_diff_err) = mean_and_error(self.sum_p_diff, self.sum_p_diff2, n);
        let (mse, mse_err) = mean_and_error(self.sum_p_diff2, self.sum_p_diff4, n);
        let rms = mse.sqrt();
        let same_top = self.n_same_top as f64 / n.max(1) as f64;
        let mut klds = self.klds.clone();
        let mut p_diffs = self.p_diffs.clone();
        klds.sort_by(f32::total_cmp);
        p_diffs.sort_by(f32::total_cmp);
        const KLD_AT: [f32; 8] = [0.999, 0.99, 0.95, 0.9, 0.1, 0.05, 0.01, 0.001];
        const DP_AT: [f32; 10] = [0.999, 0.99, 0.95, 0.9, 0.75, 0.25, 0.1, 0.05, 0.01, 0.001];
        Summary {
            count: n,
            ppl,
            ppl_err,
            ppl_base,
            ppl_base_err,
            log_ppl_correlation: if log_ppl_err * log_base_err > 0.0 {
                cov / (log_ppl_err * log_base_err)
            } else {
                0.0
            },
            log_ppl_ratio: log_ppl - log_base,
            log_ppl_ratio_err: ratio_err,
            ppl_ratio: (log_ppl - log_base).exp(),
            ppl_ratio_err: (log_ppl - log_base).exp() * ratio_err,
            ppl_diff: ppl - ppl_base,
            ppl_diff_err: (ppl_err * ppl_err + ppl_base_err * ppl_base_err - 2.0 * ppl * ppl_base * cov)
                .max(0.0)
                .sqrt(),
            kld,
            kld_err,
            kld_max: klds.last().copied().unwrap_or(0.0),
            kld_median: median(&klds),
            kld_min: klds.first().copied().unwrap_or(0.0),
            kld_percentiles: KLD_AT.iter().map(|&f| (f, percentile(&klds, f))).collect(),
            p_diff,
            p_diff_err,
            p_diff_max: p_diffs.last().copied().unwrap_or(0.0),
            p_diff_median: median(&p_diffs),
            p_diff_min: p_diffs.first().copied().unwrap_or(0.0),
            p_diff_percentiles: DP_AT.iter().map(|&f| (f, percentile(&p_diffs, f))).collect(),
            rms_p_diff: rms,
            rms_p_diff_err: if rms > 0.0 { 0.5 / rms * mse_err } else { 0.0 },
            same_top,
            same_top_err: if n > 1 { (same_top * (1.0 - same_top) / (n - 1) as f64).sqrt() } else { 0.0 },
        }
    }
}

/// Mean and standard error of the mean, as llama-perplexity computes them (no
/// error below 11 samples).
fn mean_and_error(sum: f64, sum2: f64, count: usize) -> (f64, f64) {
    if count < 1 {
        return (0.0, 0.0);
    }
    let mean = sum / count as f64;
    let var = sum2 / count as f64 - mean * mean;
    (mean, if var > 0.0 && count > 10 { (var / (count - 1) as f64).sqrt() } else { 0.0 })
}

/// Linear interpolation between the two nearest ranks (llama-perplexity's).
fn percentile(sorted: &[f32], fraction: f32) -> f32 {
    match sorted {
        [] => 0.0,
        _ if fraction <= 0.0 => sorted[0],
        _ if fraction >= 1.0 => sorted[sorted.len() - 1],
        _ => {
            let p = fraction * (sorted.len() - 1) as f32;
            let i = p as usize;
            let t = p - i as f32;
            (1.0 - t) * sorted[i] + t * sorted[(i + 1).min(sorted.len() - 1)]
        }
    }
}

fn median(sorted: &[f32]) -> f32 {
    let n = sorted.len();
    match n {
        0 => 0.0,
        _ if n.is_multiple_of(2) => 0.5 * (sorted[n / 2] + sorted[n / 2 - 1]),
        _ => sorted[n / 2],
    }
}

/// What `--kl-divergence` reports (± are one standard error, as llama-perplexity prints them).
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    /// Positions compared.
    pub count: usize,
    /// Perplexity of this model.
    pub ppl: f64,
    /// Its standard error.
    pub ppl_err: f64,
    /// Perplexity of the base.
    pub ppl_base: f64,
    /// Its standard error.
    pub ppl_base_err: f64,
    /// Correlation of the two log-likelihoods.
    pub log_ppl_correlation: f64,
    /// ln(PPL / PPL(base)).
    pub log_ppl_ratio: f64,
    /// Its standard error.
    pub log_ppl_ratio_err: f64,
    /// PPL / PPL(base).
    pub ppl_ratio: f64,
    /// Its standard error.
    pub ppl_ratio_err: f64,
    /// PPL − PPL(base).
    pub ppl_diff: f64,
    /// Its standard error.
    pub ppl_diff_err: f64,
    /// Mean KL divergence from the base.
    pub kld: f64,
    /// Its standard error.
    pub kld_err: f64,
    /// Largest.
    pub kld_max: f32,
    /// Median.
    pub kld_median: f32,
    /// Smallest.
    pub kld_min: f32,
    /// (fraction, value) at 99.9, 99, 95, 90, 10, 5, 1 and 0.1 %.
    pub kld_percentiles: Vec<(f32, f32)>,
    /// Mean Δp (probability of the right token, ours minus base).
    pub p_diff: f64,
    /// Its standard error.
    pub p_diff_err: f64,
    /// Largest Δp.
    pub p_diff_max: f32,
    /// Median Δp.
    pub p_diff_median: f32,
    /// Smallest Δp.
    pub p_diff_min: f32,
    /// (fraction, value) at 99.9 … 0.1 %.
    pub p_diff_percentiles: Vec<(f32, f32)>,
    /// RMS of Δp.
    pub rms_p_diff: f64,
    /// Its standard error.
    pub rms_p_diff_err: f64,
    /// Fraction of positions where both put the same token on top.
    pub same_top: f64,
    /// Its standard error.
    pub same_top_err: f64,
}

impl Summary {
    /// The report, laid out as llama-perplexity's.
    pub fn report(&self) -> String {
        let mut s = String::new();
        let mut line = |l: String| {
            s.push_str(&l);
            s.push('\n');
        };
        line("====== Perplexity statistics ======".into());
        line(format!("Mean PPL(Q)                   : {:10.6} ± {:10.6}", self.ppl, self.ppl_err));
        line(format!("Mean PPL(base)                : {:10.6} ± {:10.6}", self.ppl_base, self.ppl_base_err));
        line(format!("Cor(ln(PPL(Q)), ln(PPL(base))): {:6.2}%", 100.0 * self.log_ppl_correlation));
        line(format!("Mean ln(PPL(Q)/PPL(base))     : {:10.6} ± {:10.6}", self.log_ppl_ratio, self.log_ppl_ratio_err));
        line(format!("Mean PPL(Q)/PPL(base)         : {:10.6} ± {:10.6}", self.ppl_ratio, self.ppl_ratio_err));
        line(format!("Mean PPL(Q)-PPL(base)         : {:10.6} ± {:10.6}", self.ppl_diff, self.ppl_diff_err));
        line(String::new());
        line("====== KL divergence statistics ======".into());
        line(format!("Mean    KLD: {:10.6} ± {:10.6}", self.kld, self.kld_err));
        line(format!("Maximum KLD: {:10.6}", self.kld_max));
        let pct = |f: f32| format!("{:4.1}%", 100.0 * f);
        for &(f, v) in &self.kld_percentiles[..4] {
            line(format!("{}   KLD: {v:10.6}", pct(f)));
        }
        line(format!("Median  KLD: {:10.6}", self.kld_median));
        for &(f, v) in &self.kld_percentiles[4..] {
            line(format!("{}   KLD: {v:10.6}", pct(f)));
        }
        line(format!("Minimum KLD: {:10.6}", self.kld_min));
        line(String::new());
        line("====== Token probability statistics ======".into());
        line(format!("Mean    Δp: {:6.3} ± {:5.3} %", 100.0 * self.p_diff, 100.0 * self.p_diff_err));
        line(format!("Maximum Δp: {:6.3}%", 100.0 * self.p_diff_max));
        for &(f, v) in &self.p_diff_percentiles[..5] {
            line(format!("{}   Δp: {:6.3}%", pct(f), 100.0 * v));
        }
        line(format!("Median  Δp: {:6.3}%", 100.0 * self.p_diff_median));
        for &(f, v) in &self.p_diff_percentiles[5..] {
            line(format!("{}   Δp: {:6.3}%", pct(f), 100.0 * v));
        }
        line(format!("Minimum Δp: {:6.3}%", 100.0 * self.p_diff_min));
        line(format!("RMS Δp    : {:6.3} ± {:5.3} %", 100.0 * self.rms_p_diff, 100.0 * self.rms_p_diff_err));
        line(format!("Same top p: {:6.3} ± {:5.3} %", 100.0 * self.same_top, 100.0 * self.same_top_err));
        s
    }
}

#[cfg(test)]
mod tests {
    use super::super::logits_file::{encode, Record};
    use super::*;

    #[test]
    fn a_model_against_itself_diverges_by_rounding_only() {
        let mut acc = Accum::default();
        for k in 0..20 {
            let logits: Vec<f32> = (0..50).map(|i| ((i * 7 + k) as f32 * 0.37).sin() * 4.0).collect();
            let mut words = vec![0u16; 54];
            encode(&logits, k % 50, &mut words);
            acc.add(&logits, &Record::new(&words, 50), k % 50);
        }
        let s = acc.summary();
        assert_eq!(s.count, 20);
        // The file rounds log-probabilities to 16 nats / 65535 steps.
        assert!(s.kld.abs() < 1e-4, "KLD {}", s.kld);
        assert_eq!(s.same_top, 1.0);
        assert!((s.ppl / s.ppl_base - 1.0).abs() < 1e-3);
    }

    #[test]
    fn a_different_model_diverges() {
        let mut acc = Accum::default();
        for k in 0..20 {
            let base: Vec<f32> = (0..50).map(|i| ((i * 7 + k) as f32 * 0.37).sin() * 4.0).collect();
            let ours: Vec<f32> = base.iter().enumerate().map(|(i, &l)| l + 0.5 * ((i as f32) * 1.3).cos()).collect();
            let mut words = vec![0u16; 54];
            encode(&base, 3, &mut words);
            acc.add(&ours, &Record::new(&words, 50), 3);
        }
        let s = acc.summary();
        assert!(s.kld > 0.01 && s.kld_err > 0.0, "KLD {} ± {}", s.kld, s.kld_err);
        assert!(s.kld_min <= s.kld_median && s.kld_median <= s.kld_max);
        assert!(s.report().contains("Mean    KLD:"));
    }
}
