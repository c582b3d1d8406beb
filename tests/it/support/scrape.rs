//! Reading the gateway's Prometheus exposition: a scrape of the admin listener's `/metrics`
//! and the value of one series in it; shared by the telemetry and cost tests.

/// Scrapes `{admin}/metrics` (with the bearer token when given): (HTTP status, body).
pub async fn scrape(admin: &str, token: Option<&str>) -> (u16, String) {
    let mut req = super::http().get(format!("{admin}/metrics"));
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let resp = req.send().await.expect("scrape");
    (resp.status().as_u16(), resp.text().await.unwrap_or_default())
}

/// The value of the sample `series` (`name{labels}`, labels exactly as exposed and in order).
pub fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}
