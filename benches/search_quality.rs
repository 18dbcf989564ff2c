//! Tool search quality on public data: recall@1, @5, @10 and MRR@10 of `find_tools` through a real
//! sidecar in front of one real MCP server per public listing, lexical alone and fused with a real
//! sentence-embedding model, beside plain BM25 over each tool's name and description on the same pool.
//!
//! The data is built outside the repository by `scripts/search-eval-data` (see BENCHMARKS.md):
//! `MCPLEX_EVAL_DIR=DIR cargo bench --bench search_quality`. The semantic rows need the embedding server
//! and model that `scripts/install-test-tools` builds and unpacks.

use bm25::{EmbedderBuilder, Scorer};
use mcplex::app::{Options, Sidecar};
use mcplex::catalog::search::ToolWords;
use mcplex_examples::listing::Listing;
use rmcp::model::{CallToolRequestParams, ProtocolVersion};
use rmcp::service::{ClientLifecycleMode, ClientServiceExt, RoleClient, RunningService};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

#[path = "support/embedder.rs"]
mod support;
use support::embedder;

/// Ranks read per query: recall@10 and MRR@10 need no more.
const DEPTH: usize = 10;

#[derive(Deserialize)]
struct Server {
    server: String,
    tools: Vec<Value>,
}

#[derive(Deserialize)]
struct Query {
    source: String,
    query: String,
    labels: Vec<String>,
}

/// Sums of one method's scores over one source's queries.
#[derive(Default, Clone, Copy)]
struct Scores {
    queries: usize,
    at1: usize,
    at5: usize,
    at10: usize,
    reciprocal: f64,
}

impl Scores {
    /// Adds a query whose first correct tool is at `rank` (1-based), if any within [`DEPTH`].
    fn add(&mut self, rank: Option<usize>) {
        self.queries += 1;
        if let Some(rank) = rank {
            self.at1 += usize::from(rank <= 1);
            self.at5 += usize::from(rank <= 5);
            self.at10 += usize::from(rank <= 10);
            self.reciprocal += 1.0 / rank as f64;
        }
    }

    fn row(&self, method: &str, source: &str) -> String {
        let n = self.queries.max(1) as f64;
        format!(
            "| {source} | {method} | {} | {:.3} | {:.3} | {:.3} | {:.3} |",
            self.queries,
            self.at1 as f64 / n,
            self.at5 as f64 / n,
            self.at10 as f64 / n,
            self.reciprocal / n
        )
    }
}

/// Searches whose time is also left out of a second reading of the percentiles.
const WARMING: usize = 10;

/// The 1-based rank of the first tool (by its name on its server) that is one of `labels`.
fn first_correct(originals: &[String], labels: &[String]) -> Option<usize> {
    originals.iter().position(|name| labels.contains(name)).map(|i| i + 1)
}

/// Plain BM25 over `<name words> <description>` of every tool in the pool: the baseline.
struct Baseline {
    embedder: bm25::Embedder<u32, ToolWords>,
    scorer: Scorer<u32, u32>,
    names: Vec<String>,
    /// Each tool's definition, numbered: copies of one tool on several servers share a number.
    definitions: Vec<usize>,
}

impl Baseline {
    fn new(pool: &[Server]) -> Self {
        let mut names = Vec::new();
        let mut documents = Vec::new();
        let mut numbered: HashMap<String, usize> = HashMap::new();
        let mut definitions = Vec::new();
        for tool in pool.iter().flat_map(|s| &s.tools) {
            let next = numbered.len();
            definitions.push(*numbered.entry(tool.to_string()).or_insert(next));
            let name = tool["name"].as_str().unwrap_or_default().to_owned();
            documents.push(format!("{name} {}", tool["description"].as_str().unwrap_or_default()));
            names.push(name);
        }
        let corpus: Vec<&str> = documents.iter().map(String::as_str).collect();
        let embedder = EmbedderBuilder::<u32, ToolWords>::with_tokenizer_and_fit_to_corpus(ToolWords, &corpus).build();
        let mut scorer = Scorer::new();
        for (id, text) in (0u32..).zip(&documents) {
            scorer.upsert(&id, embedder.embed(text));
        }
        Self {
            embedder,
            scorer,
            names,
            definitions,
        }
    }

    /// The best matches, and the same with each tool once however many servers offer it (as
    /// `find_tools` returns them), so the table shows what that alone is worth.
    fn rank(&self, query: &str) -> (Vec<String>, Vec<String>) {
        let mut matches = self.scorer.matches(&self.embedder.embed(query));
        matches.sort_by(|a, b| b.score.total_cmp(&a.score).then(a.id.cmp(&b.id)));
        let ids = || matches.iter().map(|m| m.id as usize);
        let mut seen = HashSet::new();
        let distinct = ids().filter(|&id| seen.insert(self.definitions[id]));
        (self.names_of(ids()), self.names_of(distinct))
    }

    /// The names of the first [`DEPTH`] of `ids`.
    fn names_of(&self, ids: impl Iterator<Item = usize>) -> Vec<String> {
        ids.take(DEPTH).map(|id| self.names[id].clone()).collect()
    }
}

/// A sidecar in this process, in front of `targets`, with `tool_search` as its `toolSearch`.
async fn sidecar(dir: &Path, name: &str, targets: &str, tool_search: &str) -> (Sidecar, String, String) {
    let path = dir.join(format!("{name}.yaml"));
    std::fs::write(&path, format!("{targets}toolSearch: {tool_search}\n")).unwrap();
    let mut options = Options::new(path);
    options.listen = "127.0.0.1:0".parse().unwrap();
    options.admin = "127.0.0.1:0".parse().unwrap();
    options.startup_deadline = Duration::from_secs(60);
    let sidecar = Sidecar::start(options).await.expect("the sidecar starts");
    let mcp = format!("http://{}/mcp", sidecar.mcp_addr);
    let status = format!("http://{}/status", sidecar.admin_addr);
    (sidecar, mcp, status)
}

async fn client(url: &str) -> RunningService<RoleClient, ()> {
    let transport =
        StreamableHttpClientTransport::from_config(StreamableHttpClientTransportConfig::with_uri(url.to_owned()));
    ().serve_with_lifecycle(
        transport,
        ClientLifecycleMode::Discover {
            preferred_versions: vec![ProtocolVersion::V_2026_07_28],
        },
    )
    .await
    .expect("the client connects")
}

/// Waits until `/status` says `ready` holds, for at most `patience`.
async fn wait_status(status: &str, what: &str, patience: Duration, ready: impl Fn(&Value) -> bool) -> Value {
    let begun = Instant::now();
    loop {
        let body: Value = reqwest::get(status).await.unwrap().json().await.unwrap();
        if ready(&body) {
            return body;
        }
        assert!(
            begun.elapsed() < patience,
            "{what} within {patience:?}: {}",
            body["toolSearch"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `find_tools` for `query`: each result's name on its server, and the size of the answer's text.
async fn find(client: &RunningService<RoleClient, ()>, query: &str) -> (Vec<String>, usize) {
    let arguments = json!({"query": query, "limit": DEPTH});
    let params = CallToolRequestParams::new("find_tools").with_arguments(arguments.as_object().unwrap().clone());
    let result = serde_json::to_value(client.call_tool(params).await.expect("find_tools answers")).unwrap();
    if result["isError"] == true {
        // A query find_tools refuses (one longer than it reads) finds nothing; the table counts it a miss.
        eprintln!("find_tools refused a query: {}", result["content"][0]["text"]);
        return (Vec::new(), 0);
    }
    let size = result["content"][0]["text"].as_str().map_or(0, str::len);
    let names = result["structuredContent"]["tools"]
        .as_array()
        .expect("tools")
        .iter()
        .map(|t| {
            let (name, target) = (t["name"].as_str().unwrap(), t["target"].as_str().unwrap());
            name.strip_prefix(&format!("{target}_")).unwrap_or(name).to_owned()
        })
        .collect();
    (names, size)
}

#[tokio::main]
async fn main() {
    let Ok(dir) = std::env::var("MCPLEX_EVAL_DIR") else {
        eprintln!("set MCPLEX_EVAL_DIR to the output of scripts/search-eval-data (see BENCHMARKS.md)");
        return;
    };
    let pool: Vec<Server> = serde_json::from_slice(&std::fs::read(format!("{dir}/pool.json")).unwrap()).unwrap();
    let queries: Vec<Query> = serde_json::from_slice(&std::fs::read(format!("{dir}/queries.json")).unwrap()).unwrap();

    // One real MCP server (rmcp, streamable HTTP) per public listing.
    let stop = CancellationToken::new();
    let mut targets = String::from("targets:\n");
    let (mut tools, mut unreadable) = (0, 0);
    for server in &pool {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (listing, skipped) = Listing::new(&server.tools);
        tools += server.tools.len() - skipped;
        unreadable += skipped;
        tokio::spawn(mcplex_examples::serve_handler(
            listener,
            None,
            move || listing.clone(),
            stop.clone(),
        ));
        targets.push_str(&format!("  - name: {}\n    url: http://{addr}/mcp\n", server.server));
    }
    println!(
        "pool: {} servers, {tools} tools served ({unreadable} definitions rmcp could not read were left out); {} queries",
        pool.len(),
        queries.len()
    );

    let work = tempfile::tempdir().unwrap();
    let (_lexical, lexical_mcp, lexical_status) =
        sidecar(work.path(), "lexical", &targets, &format!("{{ results: {DEPTH} }}")).await;
    let indexed = |body: &Value| body["toolSearch"]["indexedTools"].as_u64().unwrap_or(0);
    let body = wait_status(&lexical_status, "every target indexed", Duration::from_secs(120), |b| {
        b["targets"]
            .as_array()
            .is_some_and(|t| t.iter().all(|t| t["up"] == true))
            && indexed(b) > 0
    })
    .await;
    println!("sidecar: {} tools indexed", indexed(&body));

    let embedding = embedder().await;
    let fused = match &embedding {
        Some((_, url)) => {
            let search = format!(
                "{{ results: {DEPTH}, embeddings: {{ url: \"{url}\", model: all-MiniLM-L6-v2, timeout: 30s }} }}"
            );
            let (sidecar, mcp, status) = sidecar(work.path(), "fused", &targets, &search).await;
            let begun = Instant::now();
            wait_status(&status, "every tool's vector", Duration::from_secs(900), |b| {
                let semantic = &b["toolSearch"]["semantic"];
                semantic["vectors"].as_u64().unwrap_or(0) > 0 && semantic["vectors"] == semantic["of"]
            })
            .await;
            let body = wait_status(&status, "the status", Duration::from_secs(5), |_| true).await;
            let search = &body["toolSearch"];
            println!(
                "vectors of every tool after {:.1} s; in memory: index {} bytes, vectors {} bytes; the tools' JSON {} bytes",
                begun.elapsed().as_secs_f64(),
                search["indexBytes"],
                search["semantic"]["vectorBytes"],
                search["toolsJsonBytes"],
            );
            Some((sidecar, mcp, status))
        }
        None => None,
    };

    let baseline = Baseline::new(&pool);
    let lexical = client(&lexical_mcp).await;
    let fused_client = match &fused {
        Some((_, mcp, _)) => Some(client(mcp).await),
        None => None,
    };
    let mut table: BTreeMap<(String, &str), Scores> = BTreeMap::new();
    let (mut lexical_times, mut fused_times, mut endpoint_times) = (Vec::new(), Vec::new(), Vec::new());
    let mut lexical_sizes: Vec<usize> = Vec::new();
    let http = reqwest::Client::new();
    let mut sources = HashSet::new();
    for query in &queries {
        sources.insert(query.source.clone());
        let (every, distinct) = baseline.rank(&query.query);
        for source in [query.source.clone(), "all".to_owned()] {
            table
                .entry((source.clone(), "BM25 over name and description (baseline)"))
                .or_default()
                .add(first_correct(&every, &query.labels));
            table
                .entry((source.clone(), "BM25 over name and description, each tool once"))
                .or_default()
                .add(first_correct(&distinct, &query.labels));
        }
        let begun = Instant::now();
        let (found, size) = find(&lexical, &query.query).await;
        lexical_times.push(begun.elapsed());
        lexical_sizes.push(size);
        for source in [query.source.clone(), "all".to_owned()] {
            table
                .entry((source, "find_tools, lexical"))
                .or_default()
                .add(first_correct(&found, &query.labels));
        }
        if let Some(client) = &fused_client {
            let begun = Instant::now();
            let (found, _) = find(client, &query.query).await;
            fused_times.push(begun.elapsed());
            // The endpoint alone, asked for the query's vector as the sidecar asks for it.
            if let Some((_, url)) = &embedding {
                let body = json!({"input": [query.query], "model": "all-MiniLM-L6-v2", "encoding_format": "float"});
                let begun = Instant::now();
                let answer = http.post(url).json(&body).send().await.unwrap();
                answer.bytes().await.unwrap();
                endpoint_times.push(begun.elapsed());
            }
            for source in [query.source.clone(), "all".to_owned()] {
                table
                    .entry((source, "find_tools, lexical + all-MiniLM-L6-v2"))
                    .or_default()
                    .add(first_correct(&found, &query.labels));
            }
        }
    }
    println!("| source | method | queries | R@1 | R@5 | R@10 | MRR@10 |");
    println!("|---|---|---|---|---|---|---|");
    for ((source, method), scores) in &table {
        println!("{}", scores.row(method, source));
    }
    // What the slowest answers carry: a result holds each tool's whole definition twice (structured and
    // as text), and a few public definitions are over 100 KB.
    let kb = |sizes: &mut dyn Iterator<Item = usize>| {
        let (total, count) = sizes.fold((0, 0), |(total, count), size| (total + size, count + 1));
        total as f64 / f64::from(count.max(1)) / 1e3
    };
    let mut slowest: Vec<usize> = (0..lexical_times.len()).collect();
    slowest.sort_by_key(|&i| std::cmp::Reverse(lexical_times[i]));
    slowest.truncate(8);
    println!(
        "find_tools answers, lexical: mean text {:.1} KB; the 8 slowest: {} (mean text {:.1} KB)",
        kb(&mut lexical_sizes.iter().copied()),
        slowest
            .iter()
            .map(|&i| format!(
                "#{} {:.0} ms {:.0} KB",
                i + 1,
                lexical_times[i].as_secs_f64() * 1e3,
                lexical_sizes[i] as f64 / 1e3
            ))
            .collect::<Vec<_>>()
            .join(", "),
        kb(&mut slowest.iter().map(|&i| lexical_sizes[i]))
    );
    for (method, mut times) in [
        ("lexical", lexical_times),
        ("lexical + all-MiniLM-L6-v2", fused_times),
        ("the endpoint alone, embedding the query", endpoint_times),
    ] {
        if times.len() <= WARMING {
            continue;
        }
        // The first searches meet a sidecar (and 831 servers in this process) still finishing its start.
        let first: Vec<String> = times[..3]
            .iter()
            .map(|t| format!("{:.1}", t.as_secs_f64() * 1e3))
            .collect();
        let mut warm = times[WARMING..].to_vec();
        for times in [&mut times, &mut warm] {
            times.sort();
        }
        let at = |times: &[Duration], q: f64| times[((times.len() - 1) as f64 * q) as usize].as_secs_f64() * 1e3;
        let mean = times.iter().map(Duration::as_secs_f64).sum::<f64>() / times.len() as f64 * 1e3;
        println!(
            "find_tools round trip, {method}: p50 {:.2} ms, p99 {:.2} ms, mean {mean:.2} ms; after the first {WARMING}: p50 {:.2} ms, p99 {:.2} ms; the first three {} ms",
            at(&times, 0.5),
            at(&times, 0.99),
            at(&warm, 0.5),
            at(&warm, 0.99),
            first.join(" / ")
        );
    }
    // Each sidecar's own account: the whole search, and the endpoint's share of it, as seen from inside.
    let mut accounts = vec![("lexical", lexical_status.clone())];
    if let Some((_, _, status)) = &fused {
        accounts.push(("lexical + all-MiniLM-L6-v2", status.clone()));
    }
    for (method, status) in accounts {
        let page = reqwest::get(status.replace("/status", "/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        let sample = |name: &str| {
            page.lines()
                .find_map(|l| l.strip_prefix(&format!("{name} ")))
                .and_then(|n| n.parse::<f64>().ok())
                .unwrap_or(0.0)
        };
        let mean = |histogram: &str| {
            sample(&format!("{histogram}_sum")) / sample(&format!("{histogram}_count")).max(1.0) * 1e3
        };
        let search = mean("mcplex_tool_search_duration_seconds");
        let embedding = mean("mcplex_tool_search_query_embedding_seconds");
        println!(
            "inside the sidecar, {method}: mean per find_tools {search:.2} ms, of which the query's embedding {embedding:.2} ms; the rest {:.2} ms",
            search - embedding
        );
    }
    stop.cancel();
}
