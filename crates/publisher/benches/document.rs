//! Rebuilding the platform document for 1,000 services of 10 tools each
//! (`tests/common/platform.rs`), on the path `Publisher::rebuild` takes
//! besides Postgres: `published::prepare` (the 3.1 document and its
//! canonical hash) then `published::render` (its JSON, the API Gateway
//! flavour and one document per service). The steps are timed on their own
//! too, and the YAML rendering made on the first `/openapi.yaml`.
//! Memory: `cargo run --release -p mcpo-publisher --example rebuild_memory`.

#[path = "../tests/common/platform.rs"]
mod platform;
#[path = "../tests/common/records.rs"]
mod records;

use criterion::{criterion_group, criterion_main, Criterion};
use mcpo_core::domain::schema_hash::canonical_hash;
use mcpo_publisher::{aws, document, published};

fn rebuild(c: &mut Criterion) {
    let services = platform::platform();
    let url = platform::EXECUTOR_URL;
    let authorizer = platform::authorizer();

    // One rebuild outside the timings: the size of what is built and served.
    let doc = document::build(&services, url);
    let rendered = published::render(
        1,
        published::prepare(&services, url),
        &services,
        url,
        Some(&authorizer),
    )
    .unwrap();
    eprintln!(
        "{} paths, {} component schemas; 3.1 document {} bytes, API Gateway document {} bytes, \
         {} service documents {} bytes",
        rendered.path_count,
        doc["components"]["schemas"].as_object().unwrap().len(),
        rendered.json.bytes.len(),
        rendered.aws.bytes.len(),
        rendered.by_service.len(),
        rendered
            .by_service
            .values()
            .map(|r| r.bytes.len())
            .sum::<usize>(),
    );

    let mut group = c.benchmark_group("1000 services x 10 tools");
    group.sample_size(10);
    group.bench_function("full rebuild (prepare + render)", |b| {
        b.iter(|| {
            let prepared = published::prepare(&services, url);
            published::render(1, prepared, &services, url, Some(&authorizer)).unwrap()
        })
    });
    // The same renderings made from trees (a copy of the document per
    // service, the API Gateway flavour's tree, YAML at once), as rebuilds
    // did before `published`: the ratio to the line above.
    group.bench_function("full rebuild from trees (before)", |b| {
        b.iter(|| {
            let mut doc = document::build(&services, url);
            doc["info"]["version"] = "".into();
            let hash = canonical_hash(&doc);
            doc["info"]["version"] = "1".into();
            let aws = serde_json::to_vec_pretty(&aws::convert(&doc, Some(&authorizer))).unwrap();
            let by_service: Vec<Vec<u8>> = services
                .iter()
                .map(|s| {
                    let mut one = document::build(std::slice::from_ref(s), url);
                    one["info"]["version"] = s.service.revision.to_string().into();
                    serde_json::to_vec_pretty(&one).unwrap()
                })
                .collect();
            let yaml = serde_yaml_ng::to_string(&doc).unwrap();
            (
                hash,
                serde_json::to_vec_pretty(&doc).unwrap(),
                yaml,
                aws,
                by_service,
            )
        })
    });
    group.bench_function("openapi 3.1 document", |b| {
        b.iter(|| document::platform(&services, url))
    });
    group.bench_function("canonical hash of the document", |b| {
        b.iter(|| canonical_hash(&doc))
    });
    group.bench_function("api gateway flavour, rendered", |b| {
        b.iter(|| aws::render(&doc, Some(&authorizer)).unwrap())
    });
    group.bench_function("yaml, on first request", |b| {
        b.iter(|| published::yaml_of(&rendered.json.bytes).unwrap())
    });
    group.finish();
}

criterion_group!(benches, rebuild);
criterion_main!(benches);
