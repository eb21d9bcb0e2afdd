//! Rebuilding the platform document for 1,000 services of 10 tools each
//! (`tests/common/platform.rs`), on the path `Publisher::rebuild` takes
//! besides Postgres: `published::prepare` (every tool translated, its
//! pieces rendered in both flavours, hashed) then `published::render` (the
//! 3.1 and API Gateway documents assembled). Its steps are timed on their
//! own too, with what is made on first request (YAML, a service's own
//! document), and the same renderings made from one tree per document, the
//! way rebuilds used to: the ratio of the first line to that one.
//! Memory: `cargo run --release -p mcpo-publisher --example rebuild_memory`.

#[path = "../tests/common/platform.rs"]
mod platform;
#[path = "../tests/common/records.rs"]
mod records;

use criterion::{criterion_group, criterion_main, Criterion};
use mcpo_core::domain::schema_hash::canonical_hash;
use mcpo_publisher::{aws, document, published};

// As the publisher's binary.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn rebuild(c: &mut Criterion) {
    let services = platform::platform();
    let url = platform::EXECUTOR_URL;
    let authorizer = platform::authorizer();

    // One rebuild outside the timings: the size of what is built and served.
    let rendered = published::render(1, published::prepare(&services, url, Some(&authorizer)));
    let one_service = services[services.len() / 2].service.name.clone();
    eprintln!(
        "{} paths; 3.1 document {} bytes, API Gateway document {} bytes, \
         the document of `{one_service}` {} bytes",
        rendered.path_count(),
        rendered.json.bytes.len(),
        rendered.aws.bytes.len(),
        rendered.service(&one_service).unwrap().bytes.len(),
    );

    let mut group = c.benchmark_group("1000 services x 10 tools");
    group.sample_size(10);
    group.bench_function("full rebuild (prepare + render)", |b| {
        b.iter(|| published::render(1, published::prepare(&services, url, Some(&authorizer))))
    });
    group.bench_function("full rebuild from trees (before)", |b| {
        b.iter(|| {
            let mut doc = document::build(&services, url);
            let hash = canonical_hash(&doc);
            doc["info"]["version"] = "1".into();
            let json = serde_json::to_vec_pretty(&doc).unwrap();
            let aws = serde_json::to_vec_pretty(&aws::convert(&doc, Some(&authorizer))).unwrap();
            (hash, json, aws)
        })
    });
    group.bench_function("translation alone (document::parts)", |b| {
        b.iter(|| document::parts(&services))
    });
    group.bench_function("prepare", |b| {
        b.iter(|| published::prepare(&services, url, Some(&authorizer)))
    });
    group.bench_function("render (assembly of both documents)", |b| {
        b.iter_batched(
            || published::prepare(&services, url, Some(&authorizer)),
            |prepared| published::render(1, prepared),
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function("a service's document, on first request", |b| {
        b.iter_batched(
            || {
                published::render(
                    1,
                    published::prepare(&services[..50], url, Some(&authorizer)),
                )
            },
            |published| {
                published
                    .service(&services[25].service.name)
                    .map(|r| r.bytes.len())
            },
            criterion::BatchSize::LargeInput,
        )
    });
    group.bench_function("yaml, on first request", |b| {
        b.iter(|| published::yaml_of(&rendered.json.bytes).unwrap())
    });
    group.finish();
}

criterion_group!(benches, rebuild);
criterion_main!(benches);
