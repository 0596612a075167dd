//! Every check of [`airlock_conformance::CHECKS`] against a fresh airlock, one test each.

use airlock_conformance::{CHECKS, Conformance, Optional};

use crate::server::TestServer;

async fn run(name: &str) {
    let server = TestServer::start();
    let result = Conformance::new(&server.base).run_check(name).await;
    match result {
        Some(Ok(())) => {}
        Some(Err(failure)) => panic!("{failure}"),
        None => panic!("no check is called {name}"),
    }
}

/// One `#[tokio::test]` per check, and the list of them.
macro_rules! spec_tests {
    ($($name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                run(stringify!($name)).await;
            }
        )*

        const TESTED: &[&str] = &[$(stringify!($name)),*];
    };
}

spec_tests!(
    end_1_base,
    end_2_pull_blob,
    end_2_range_get,
    end_2_empty_blobs,
    end_3_pull_manifest,
    end_3_docker_media_types,
    end_4a_post_upload,
    end_4b_monolithic_post,
    end_4c_sha512_blob,
    end_5_patch_chunks,
    end_6_put_close,
    end_7_put_manifest,
    end_7_large_manifest,
    end_7b_put_manifest_tags,
    end_8a_tags_list,
    end_8b_tags_pagination,
    end_9_delete_manifest,
    end_10_delete_blob,
    end_11_mount,
    end_12a_referrers,
    end_12b_referrers_filter,
    end_13_upload_status,
    end_14_cancel_upload,
    error_blob_unknown,
    error_digest_invalid,
    error_manifest_blob_unknown,
    error_manifest_invalid,
    error_manifest_unknown,
    error_name_invalid,
);

#[test]
fn every_check_has_a_test() {
    assert_eq!(
        TESTED, CHECKS,
        "spec.rs must list every check of airlock_conformance::CHECKS"
    );
}

/// What the spec leaves optional is accepted either way; airlock implements it, so it passes
/// the lenient profile too.
#[tokio::test]
async fn every_check_passes_when_optional_features_are_allowed() {
    let server = TestServer::start();
    let checks = Conformance::new(&server.base).with_optional(Optional::Allow);
    let failures: Vec<String> = checks
        .run_all()
        .await
        .into_iter()
        .filter_map(|(_, result)| result.err().map(|f| f.to_string()))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// The checks fail, each naming itself, where no registry answers.
#[tokio::test]
async fn every_check_fails_against_a_closed_port() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let results = Conformance::new(&format!("http://127.0.0.1:{port}"))
        .run_all()
        .await;
    assert_eq!(results.len(), CHECKS.len());
    for (name, result) in results {
        let failure = result.expect_err(name);
        assert_eq!(failure.check, name);
        assert!(failure.what.contains("no response"), "{failure}");
    }
}
