//! Native timing of the built-in rules on a benign GET (development aid; the harness bench is
//! the reference number).
use std::time::Instant;
use waf::config::Policy;
use waf::inspect::{HeadersOutcome, Verdict};
use waf::request::RequestHead;

fn main() {
    let started = Instant::now();
    let config = std::env::args().nth(1).unwrap_or_else(|| "{}".into());
    let policy = Policy::from_json(config.as_bytes()).expect("policy compiles");
    println!("compile: {:?}", started.elapsed());
    let headers: Vec<(String, Vec<u8>)> = [
        (":method", "GET"),
        (":path", "/shop/search?q=running+shoes&size=42&color=blue&sort=price_asc&page=2"),
        (":authority", "shop.example.com"),
        ("user-agent", "Mozilla/5.0 (X11; Linux x86_64; rv:140.0) Gecko/20100101 Firefox/140.0"),
        ("accept", "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
        ("accept-language", "en-GB,en;q=0.5"),
        ("referer", "https://shop.example.com/shop/"),
        ("cookie", "session=4f9c2a7be1d04e1f8c3b; theme=dark; consent=analytics:0,ads:0"),
    ]
    .iter()
    .map(|(name, value)| (name.to_string(), value.as_bytes().to_vec()))
    .collect();
    let head = RequestHead { headers: &headers, protocol: b"HTTP/1.1", remote_addr: b"127.0.0.1" };
    let rounds: u32 = std::env::var("WAF_ROUNDS").ok().and_then(|value| value.parse().ok()).unwrap_or(20_000);
    let started = Instant::now();
    for _ in 0..rounds {
        match policy.inspect_headers(&head, true) {
            HeadersOutcome::Done(Verdict::Allow) => {}
            HeadersOutcome::Done(other) => panic!("benign request did not pass: {other:?}"),
            HeadersOutcome::ReadBody(_) => panic!("benign request did not pass: a body was expected"),
        }
    }
    println!("benign GET: {:?} per request", started.elapsed() / rounds);
}
