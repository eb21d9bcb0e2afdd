//! The renderings a rebuild serves are assembled from pieces rendered tool
//! by tool (`published`), not from one tree per document: each must be
//! byte for byte what rendering the tree would give, names that clash
//! between services included.

#[path = "common/records.rs"]
mod records;

use mcpo_core::config::ApiGatewayAuthorizer;
use mcpo_core::db::queries::ServiceRecord;
use mcpo_publisher::{aws, document, published};
use records::{service, Tool};
use serde_json::{json, Value};

const EXECUTOR_URL: &str = "https://tools.example.com";

fn tool(name: &str, input: Value) -> Tool {
    Tool {
        name: name.to_owned(),
        input,
        output: Some(
            json!({ "type": "object", "properties": { "n": { "type": ["number", "null"] } } }),
        ),
        annotations: Some(json!({ "readOnlyHint": true })),
    }
}

fn recursive() -> Value {
    json!({
        "type": "object",
        "$defs": { "node": { "type": "object", "properties": { "next": { "$ref": "#/$defs/node" } } } },
        "properties": { "root": { "$ref": "#/$defs/node" }, "kind": { "const": "k" } },
        "required": ["root"]
    })
}

/// Services whose names clash once mapped: `a`'s `b_c` and `a_b`'s `c`
/// want the same component names, `x-y` and `x_y` the same operation ids,
/// `m-n` and `m_n` (and `p_q` and `p-q`, the later one's name sorting
/// first) the same operation ids and model names; and ordinary ones
/// around them.
fn services() -> Vec<ServiceRecord> {
    let mut services = vec![
        service(
            "a",
            vec![
                tool("b_c", recursive()),
                tool("plain", json!({ "type": "object" })),
            ],
        ),
        service("a_b", vec![tool("c", recursive())]),
        service("x-y", vec![tool("t", recursive())]),
        service("x_y", vec![tool("t", json!({ "type": "object" }))]),
        service("empty", vec![]),
        service("m-n", vec![tool("t", recursive())]),
        service("m_n", vec![tool("t", recursive())]),
        service("p_q", vec![tool("t", recursive())]),
        service("p-q", vec![tool("t", recursive())]),
    ];
    for n in 0..5 {
        services.push(service(
            &format!("service-{n}"),
            (0..3)
                .map(|t| tool(&format!("tool_{t}"), recursive()))
                .collect(),
        ));
    }
    services[3].service.revision = 7;
    services
}

fn authorizer() -> ApiGatewayAuthorizer {
    ApiGatewayAuthorizer {
        uri: "arn:aws:apigateway:eu-west-1:lambda:path/2015-03-31/functions/arn:aws:lambda:eu-west-1:123456789012:function:auth/invocations".into(),
        credentials: None,
        ttl: std::time::Duration::from_secs(300),
    }
}

#[test]
fn every_rendering_is_the_rendering_of_its_tree() {
    let services = services();
    for authorizer in [None, Some(authorizer())] {
        let prepared = published::prepare(&services, EXECUTOR_URL, authorizer.as_ref());
        let stored = prepared.json(3);
        let rendered = published::render(3, prepared);

        let mut doc = document::build(&services, EXECUTOR_URL);
        doc["info"]["version"] = "3".into();
        assert_eq!(rendered.version, 3);
        assert_eq!(
            String::from_utf8_lossy(&rendered.json.bytes),
            String::from_utf8_lossy(&serde_json::to_vec_pretty(&doc).unwrap())
        );
        assert_eq!(
            stored, rendered.json.bytes,
            "what is stored is what is served"
        );
        assert_eq!(
            String::from_utf8_lossy(&rendered.aws.bytes),
            String::from_utf8_lossy(
                &serde_json::to_vec_pretty(&aws::convert(&doc, authorizer.as_ref())).unwrap()
            )
        );
        assert_eq!(
            published::yaml_of(&rendered.json.bytes).unwrap(),
            serde_yaml_ng::to_string(&doc).unwrap().into_bytes()
        );
        assert_eq!(
            rendered.path_count(),
            doc["paths"].as_object().unwrap().len()
        );

        assert_eq!(rendered.service_count(), services.len());
        for record in &services {
            let mut alone = document::build(std::slice::from_ref(record), EXECUTOR_URL);
            alone["info"]["version"] = record.service.revision.to_string().into();
            let served = &rendered.service(&record.service.name).unwrap().bytes;
            assert_eq!(
                String::from_utf8_lossy(served),
                String::from_utf8_lossy(&serde_json::to_vec_pretty(&alone).unwrap()),
                "the document of {}",
                record.service.name
            );
        }
    }
}

#[test]
fn the_hash_ignores_the_version_number_only() {
    let services = services();
    let first = published::prepare(&services, EXECUTOR_URL, None);
    let again = published::prepare(&services, EXECUTOR_URL, None);
    assert_eq!(first.hash, again.hash);
    let mut changed = services.clone();
    changed[0].tools[0].tool.description = Some("Something else.".into());
    assert_ne!(
        published::prepare(&changed, EXECUTOR_URL, None).hash,
        first.hash
    );
    let mut retagged = services.clone();
    retagged[4].service.description = Some("Another tag description.".into());
    assert_ne!(
        published::prepare(&retagged, EXECUTOR_URL, None).hash,
        first.hash
    );
}
