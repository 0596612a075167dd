use airlock_store::Digest;
use axum::{
    body::Body,
    http::{HeaderName, HeaderValue, Method, Request},
};
use proptest::{
    prelude::*,
    test_runner::{Config, TestRunner},
};

use crate::support::{DOCKER_LIST, OCI_INDEX, OCI_MANIFEST, Registry};

/// What a random request is made of.
#[derive(Debug, Clone)]
struct Input {
    method: Method,
    path: String,
    query: Option<String>,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

fn method() -> impl Strategy<Value = Method> {
    prop::sample::select(vec![
        Method::GET,
        Method::HEAD,
        Method::PUT,
        Method::POST,
        Method::PATCH,
        Method::DELETE,
        Method::OPTIONS,
    ])
}

/// Method and path: mostly a valid method for a `/v2/<name>/<kind>/<ref>` shape, so deep
/// branches run, with names and references from known content and mutations; sometimes any
/// method on segment soup.
fn target(known: Vec<String>) -> impl Strategy<Value = (Method, String)> {
    let name = prop_oneof![
        6 => Just("fuzz/app".to_owned()),
        1 => Just("other".to_owned()),
        1 => Just("..".to_owned()),
        1 => Just("fuzz/../app".to_owned()),
        1 => "[a-z0-9._/-]{1,20}",
    ];
    let mut refs: Vec<String> = ["latest", "v1", "sha256:", "sha256%3Aab", "-x", ""]
        .iter()
        .map(|s| s.to_string())
        .collect();
    refs.extend(known);
    let reference = prop_oneof![
        6 => prop::sample::select(refs),
        1 => "[a-zA-Z0-9._:%-]{1,70}",
    ];
    let combo = prop::sample::select(vec![
        (Method::GET, "manifests"),
        (Method::HEAD, "manifests"),
        (Method::PUT, "manifests"),
        (Method::DELETE, "manifests"),
        (Method::GET, "blobs"),
        (Method::HEAD, "blobs"),
        (Method::DELETE, "blobs"),
        (Method::POST, "blobs/uploads/"),
        (Method::PATCH, "blobs/uploads"),
        (Method::PUT, "blobs/uploads"),
        (Method::GET, "blobs/uploads"),
        (Method::DELETE, "blobs/uploads"),
        (Method::GET, "tags/list"),
        (Method::GET, "referrers"),
        (Method::GET, "_catalog"),
    ]);
    let shaped = (combo, name, reference).prop_map(|((method, kind), n, r)| {
        let path = match kind {
            "blobs/uploads/" | "tags/list" => format!("/v2/{n}/{kind}"),
            "_catalog" => "/v2/_catalog".to_owned(),
            _ => format!("/v2/{n}/{kind}/{r}"),
        };
        (method, path)
    });
    let seg = prop_oneof![
        3 => prop::sample::select(vec![
            "v2", "blobs", "uploads", "manifests", "tags", "list", "referrers", "_catalog", "",
            "..", "%2e%2e", "fuzz", "app",
        ])
        .prop_map(str::to_owned),
        1 => "\\PC{0,12}",
    ];
    let soup = (method(), prop::collection::vec(seg, 0..7))
        .prop_map(|(m, s)| (m, format!("/v2/{}", s.join("/"))));
    prop_oneof![5 => shaped, 1 => soup]
}

fn query() -> impl Strategy<Value = Option<String>> {
    let key = prop::sample::select(vec![
        "ns",
        "n",
        "last",
        "digest",
        "mount",
        "from",
        "tag",
        "artifactType",
        "digest-algorithm",
    ]);
    let value = prop_oneof![
        Just(Digest::sha256(b"fuzz").to_string()),
        Just("sha512:00".to_owned()),
        Just("docker.io".to_owned()),
        Just("99999999999999999999".to_owned()),
        "[a-zA-Z0-9._:%/+-]{0,20}",
    ];
    proptest::option::of(prop::collection::vec((key, value), 0..4).prop_map(|pairs| {
        pairs
            .into_iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("&")
    }))
}

fn headers() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop::sample::select(vec![
        "content-type",
        "content-length",
        "content-range",
        "range",
        "accept",
        "x-junk",
    ]);
    let value = prop_oneof![
        Just(OCI_MANIFEST.to_owned()),
        Just(OCI_INDEX.to_owned()),
        Just(DOCKER_LIST.to_owned()),
        Just("bytes=0-".to_owned()),
        Just("bytes=-1".to_owned()),
        Just("0-0".to_owned()),
        Just("18446744073709551615-18446744073709551615".to_owned()),
        "[0-9]{1,22}",
        "[0-9]{1,6}-[0-9]{1,6}",
        "bytes=[0-9]{0,20}-[0-9]{0,20}",
        "[ -~]{0,40}",
        "[ -~]{2000,4000}",
    ];
    prop::collection::vec((name.prop_map(str::to_owned), value), 0..5)
}

fn body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        prop::collection::vec(any::<u8>(), 0..256),
        Just(br#"{"schemaVersion":2,"manifests":[]}"#.to_vec()),
        Just(
            format!(
                r#"{{"schemaVersion":2,"mediaType":"{OCI_MANIFEST}","config":{{"mediaType":"a/b","digest":"{}","size":4}},"layers":[]}}"#,
                Digest::sha256(b"fuzz")
            )
            .into_bytes()
        ),
        Just(b"fuzz".to_vec()),
    ]
}

fn request(input: &Input) -> Option<Request<Body>> {
    let uri = match &input.query {
        Some(q) => format!("{}?{q}", input.path),
        None => input.path.clone(),
    };
    let mut builder = Request::builder().method(input.method.clone()).uri(uri);
    for (name, value) in &input.headers {
        let name = HeaderName::try_from(name.as_str()).ok()?;
        let value = HeaderValue::try_from(value.as_str()).ok()?;
        builder = builder.header(name, value);
    }
    builder.body(Body::from(input.body.clone())).ok()
}

#[test]
fn random_requests_never_fail_the_server() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let r = Registry::new();
    // Known content, so random requests also reach real blobs, manifests and sessions.
    let (location, digests) = runtime.block_on(async {
        let image = r.push_image("fuzz/app", "latest", 1).await;
        let location = r.start_upload("fuzz/app").await;
        let digests = vec![
            image.digest.to_string(),
            Digest::sha256(&image.layer).to_string(),
        ];
        (location, digests)
    });
    let session = location.rsplit('/').next().expect("id").to_owned();
    let mut known = digests;
    known.push(session);
    let strategy = (target(known), query(), headers(), body()).prop_map(
        |((method, path), query, headers, body)| Input {
            method,
            path,
            query,
            headers,
            body,
        },
    );
    let mut runner = TestRunner::new(Config {
        cases: 400,
        failure_persistence: None,
        ..Config::default()
    });
    runner
        .run(&strategy, |input| {
            let Some(req) = request(&input) else {
                return Ok(());
            };
            let resp = runtime.block_on(r.send(req));

            prop_assert!(
                !resp.status.is_server_error(),
                "{input:?} gave {} {}",
                resp.status,
                String::from_utf8_lossy(&resp.body)
            );
            Ok(())
        })
        .expect("no request made the server fail");
}
