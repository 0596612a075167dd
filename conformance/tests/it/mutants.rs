//! Issue 13: the checks can fail. Each row of [`CAUGHT`] serves a registry that breaks one rule
//! (a [`Mutant`] of airlock, see `wrong_registry`) and names the checks that must fail against
//! it, each with a fragment of its failure that shows the check caught that rule and not
//! something else. Under [`Optional::Allow`] the same checks must still fail when the spec
//! forbids the mutant's behaviour, and pass when the spec allows it as a fallback. Every check
//! is in some row; the wrapper without a defect passes every check under both profiles.

use airlock_conformance::{CHECKS, CheckFailure, Conformance, Optional};

use crate::wrong_registry::{Mutant, Mutant::*, WrongRegistries};

/// Whether the spec allows what the mutant does (it skips a MAY or SHOULD) or forbids it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Spec {
    /// Forbidden: the checks fail under both profiles.
    Breaks,
    /// A fallback the spec allows: the checks fail only under [`Optional::Require`].
    Allows,
}

use Spec::*;

/// A mutant, what the spec says of it, and the checks that must catch it: (check, a fragment
/// of its failure).
struct Row {
    mutant: Mutant,
    spec: Spec,
    caught_by: &'static [(&'static str, &'static str)],
}

const fn row(
    mutant: Mutant,
    spec: Spec,
    caught_by: &'static [(&'static str, &'static str)],
) -> Row {
    Row {
        mutant,
        spec,
        caught_by,
    }
}

const NO_DIGEST: &str = "without the required docker-content-digest header";

const CAUGHT: &[Row] = &[
    row(
        BaseNotFound,
        Breaks,
        &[("end_1_base", "expected status 200, got 404")],
    ),
    row(
        BlobDigestHeaderDropped,
        Breaks,
        &[
            ("end_2_pull_blob", NO_DIGEST),
            ("end_2_empty_blobs", NO_DIGEST),
        ],
    ),
    row(
        BlobHeadWrongLength,
        Breaks,
        &[("end_2_pull_blob", "Content-Length is 3001, expected 3000")],
    ),
    row(
        BlobBodyCorrupted,
        Breaks,
        &[("end_2_pull_blob", "first difference at 0")],
    ),
    row(
        UnknownBlobIs400,
        Breaks,
        &[
            ("end_2_pull_blob", "expected status 404, got 400"),
            ("error_blob_unknown", "expected status 404, got 400"),
        ],
    ),
    row(
        EmptyBlobsNotServed,
        Breaks,
        &[("end_2_empty_blobs", "expected status 200, got 404")],
    ),
    row(
        RangeIgnored,
        Allows,
        &[("end_2_range_get", "expected status 206, got 200")],
    ),
    row(
        RangeNot416,
        Allows,
        &[("end_2_range_get", "expected status 416, got 200")],
    ),
    row(
        ContentRangeWrong,
        Breaks,
        &[("end_2_range_get", "Content-Range is bytes 500-1499/2049")],
    ),
    row(
        ManifestAsJson,
        Breaks,
        &[
            ("end_3_pull_manifest", "Content-Type is application/json"),
            (
                "end_3_docker_media_types",
                "Content-Type is application/json",
            ),
            ("end_7_put_manifest", "Content-Type is application/json"),
        ],
    ),
    row(
        DockerTypesAsOci,
        Breaks,
        &[(
            "end_3_docker_media_types",
            "Content-Type is application/vnd.oci.image.manifest.v1+json, expected \
             application/vnd.docker.distribution.manifest.v2+json",
        )],
    ),
    row(
        ManifestHeadDigestDropped,
        Breaks,
        &[("end_3_pull_manifest", NO_DIGEST)],
    ),
    row(
        UnknownManifestIs400,
        Breaks,
        &[
            ("end_3_pull_manifest", "expected status 404, got 400"),
            ("error_manifest_unknown", "expected status 404, got 400"),
        ],
    ),
    row(
        UploadSessionReused,
        Breaks,
        &[("end_4a_post_upload", "answered the same Location")],
    ),
    row(
        MonolithicPostIgnored,
        Allows,
        &[
            ("end_4b_monolithic_post", "expected status 201, got 202"),
            ("end_4c_sha512_blob", "expected status 201, got 202"),
        ],
    ),
    row(
        Sha512Refused,
        Breaks,
        &[("end_4c_sha512_blob", "expected status 202, got 400")],
    ),
    row(
        PatchRangeWrong,
        Breaks,
        &[("end_5_patch_chunks", "Range is \"bytes=0-")],
    ),
    row(
        ChunkOutOfOrderAccepted,
        Breaks,
        &[("end_5_patch_chunks", "expected status 416, got 202")],
    ),
    row(
        StreamedPatchRefused,
        Breaks,
        &[("end_5_patch_chunks", "expected status 202, got 400")],
    ),
    row(
        FinalChunkOutOfOrderAccepted,
        Breaks,
        &[("end_6_put_close", "expected status 416, got 201")],
    ),
    row(
        BlobLocationWrong,
        Breaks,
        &[("end_6_put_close", "expected status 200, got 404")],
    ),
    row(
        ManifestLocationDropped,
        Breaks,
        &[("end_7_put_manifest", "without the required location header")],
    ),
    row(
        ManifestReformatted,
        Breaks,
        &[("end_7_put_manifest", "bytes expected")],
    ),
    row(
        TagNotMoved,
        Breaks,
        &[("end_7_put_manifest", "bytes expected")],
    ),
    row(
        LargeManifestRefused,
        Allows,
        &[("end_7_large_manifest", "expected status 201, got 413")],
    ),
    row(
        TagParamsIgnored,
        Allows,
        &[("end_7b_put_manifest_tags", "OCI-Tag headers [] do not name")],
    ),
    row(
        OciTagDropped,
        Allows,
        &[("end_7b_put_manifest_tags", "OCI-Tag headers [] do not name")],
    ),
    row(
        TagsUnsorted,
        Breaks,
        &[
            ("end_8a_tags_list", "expected [\"1.2.3\", \"a\", \"beta-1\""),
            ("end_8b_tags_pagination", "expected [\"a1\", \"b2\"]"),
        ],
    ),
    row(
        TagsNIgnored,
        Breaks,
        &[("end_8b_tags_pagination", "expected [\"a1\", \"b2\"]")],
    ),
    row(
        TagsLastIgnored,
        Breaks,
        &[("end_8b_tags_pagination", "expected [\"c3\", \"d4\"]")],
    ),
    row(
        TagsLinkDropped,
        Allows,
        &[("end_8b_tags_pagination", "no Link")],
    ),
    row(
        ManifestPutDigestWrong,
        Breaks,
        &[("end_7_put_manifest", "Docker-Content-Digest is")],
    ),
    row(
        DeletedTagListed,
        Breaks,
        &[("end_9_delete_manifest", "the tags list of")],
    ),
    row(
        ManifestDeleteNoop,
        Breaks,
        &[("end_9_delete_manifest", "expected status 404, got 200")],
    ),
    row(
        TagDeleteDeletesManifest,
        Breaks,
        &[("end_9_delete_manifest", "expected status 200, got 404")],
    ),
    row(
        BlobDeleteNoop,
        Breaks,
        &[("end_10_delete_blob", "expected status 404, got 200")],
    ),
    row(MountIgnored, Allows, &[("end_11_mount", "202 (no mount)")]),
    row(
        MountClaimedNotDone,
        Breaks,
        &[("end_11_mount", "expected status 200, got 404")],
    ),
    row(
        OciSubjectDropped,
        Breaks,
        &[
            (
                "end_12a_referrers",
                "without the required oci-subject header",
            ),
            (
                "end_12b_referrers_filter",
                "without the required oci-subject header",
            ),
        ],
    ),
    row(
        ReferrersAsJson,
        Breaks,
        &[("end_12a_referrers", "Content-Type is application/json")],
    ),
    row(
        ReferrersArtifactTypeDropped,
        Breaks,
        &[("end_12a_referrers", "artifactType None")],
    ),
    row(
        ReferrersAnnotationsDropped,
        Breaks,
        &[("end_12a_referrers", "annotation org.example")],
    ),
    row(
        ReferrersBadDigestIs404,
        Breaks,
        &[("end_12a_referrers", "expected status 400, got 404")],
    ),
    row(
        ReferrersFilterIgnored,
        Allows,
        &[("end_12b_referrers_filter", "no OCI-Filters-Applied")],
    ),
    row(
        ReferrersFilterClaimed,
        Breaks,
        &[("end_12b_referrers_filter", "lists 3 referrers")],
    ),
    row(
        UploadStatusIs200,
        Breaks,
        &[("end_13_upload_status", "expected status 204, got 200")],
    ),
    row(
        UploadStatusRangeWrong,
        Breaks,
        &[(
            "end_13_upload_status",
            "Range is \"0-1000\", expected \"0-999\"",
        )],
    ),
    row(
        CancelNoop,
        Breaks,
        &[("end_14_cancel_upload", "expected status 404, got 204")],
    ),
    row(
        Code {
            from: "BLOB_UPLOAD_UNKNOWN",
            to: "BLOB_UNKNOWN",
        },
        Breaks,
        &[(
            "end_14_cancel_upload",
            "without error code BLOB_UPLOAD_UNKNOWN",
        )],
    ),
    row(
        Code {
            from: "BLOB_UNKNOWN",
            to: "NAME_UNKNOWN",
        },
        Breaks,
        &[("error_blob_unknown", "without error code BLOB_UNKNOWN")],
    ),
    row(
        DigestNotVerified,
        Breaks,
        &[("error_digest_invalid", "expected status 400, got 201")],
    ),
    row(
        Code {
            from: "DIGEST_INVALID",
            to: "BLOB_UPLOAD_INVALID",
        },
        Breaks,
        &[("error_digest_invalid", "without error code DIGEST_INVALID")],
    ),
    row(
        ManifestBlobsNotChecked,
        Allows,
        &[(
            "error_manifest_blob_unknown",
            "expected status 400 or 404, got 201",
        )],
    ),
    row(
        Code {
            from: "MANIFEST_BLOB_UNKNOWN",
            to: "MANIFEST_INVALID",
        },
        Breaks,
        &[(
            "error_manifest_blob_unknown",
            "without error code MANIFEST_BLOB_UNKNOWN",
        )],
    ),
    row(
        InvalidManifestIs500,
        Breaks,
        &[("error_manifest_invalid", "expected status 400, got 500")],
    ),
    row(
        Code {
            from: "MANIFEST_INVALID",
            to: "UNSUPPORTED",
        },
        Breaks,
        &[(
            "error_manifest_invalid",
            "without error code MANIFEST_INVALID",
        )],
    ),
    row(
        Code {
            from: "MANIFEST_UNKNOWN",
            to: "NAME_UNKNOWN",
        },
        Breaks,
        &[(
            "error_manifest_unknown",
            "without error code MANIFEST_UNKNOWN",
        )],
    ),
    row(
        NamesLowercased,
        Breaks,
        &[("error_name_invalid", "expected status 400 or 404, got 202")],
    ),
    row(
        Code {
            from: "NAME_INVALID",
            to: "NAME_UNKNOWN",
        },
        Breaks,
        &[("error_name_invalid", "without error code NAME_INVALID")],
    ),
    row(
        ErrorBodiesNotJson,
        Allows,
        &[
            (
                "end_14_cancel_upload",
                "without error code BLOB_UPLOAD_UNKNOWN",
            ),
            ("error_blob_unknown", "without error code BLOB_UNKNOWN"),
            ("error_digest_invalid", "without error code DIGEST_INVALID"),
            (
                "error_manifest_blob_unknown",
                "without error code MANIFEST_BLOB_UNKNOWN",
            ),
            (
                "error_manifest_invalid",
                "without error code MANIFEST_INVALID",
            ),
            (
                "error_manifest_unknown",
                "without error code MANIFEST_UNKNOWN",
            ),
            ("error_name_invalid", "without error code NAME_INVALID"),
        ],
    ),
];

#[test]
fn every_check_is_caught_by_some_mutant() {
    for row in CAUGHT {
        assert!(!row.caught_by.is_empty(), "{:?} names no check", row.mutant);
        for (check, _) in row.caught_by {
            assert!(
                CHECKS.contains(check),
                "{:?} names no check {check}",
                row.mutant
            );
        }
    }
    let uncaught: Vec<&str> = CHECKS
        .iter()
        .copied()
        .filter(|check| {
            !CAUGHT
                .iter()
                .any(|r| r.caught_by.iter().any(|(c, _)| c == check))
        })
        .collect();
    assert!(
        uncaught.is_empty(),
        "no mutant makes these checks fail: {uncaught:?}"
    );
}

/// One check against one registry, and what must come of it.
struct Run {
    mutant: Mutant,
    optional: Optional,
    check: &'static str,
    /// `Some(fragment)`: the check fails with a message containing it; `None`: it passes.
    failure: Option<&'static str>,
}

impl Run {
    /// What is wrong with `result`, if anything.
    fn judge(&self, result: Result<(), CheckFailure>) -> Option<String> {
        let Run {
            mutant,
            optional,
            check,
            failure,
        } = self;
        match (failure, result) {
            (None, Ok(())) => None,
            (None, Err(got)) => Some(format!("{mutant:?} under {optional:?} fails {got}")),
            (Some(_), Ok(())) => Some(format!("{mutant:?} under {optional:?} passes {check}")),
            (Some(fragment), Err(got)) => (got.check != *check || !got.what.contains(fragment))
                .then(|| {
                    format!(
                        "{mutant:?} under {optional:?} fails {check}, not with {fragment:?}: {got}"
                    )
                }),
        }
    }
}

/// Every row of [`CAUGHT`] under both profiles and every check against the wrapper that breaks
/// nothing, all at once, each mutant on its own port.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_mutant_fails_the_checks_of_its_rule() {
    let mut mutants: Vec<Mutant> = CAUGHT.iter().map(|r| r.mutant).collect();
    mutants.push(Identity);
    let (_servers, bases) = WrongRegistries::start(&mutants).await;

    let mut runs = Vec::new();
    for optional in [Optional::Require, Optional::Allow] {
        for (row, base) in CAUGHT.iter().zip(&bases) {
            for &(check, fragment) in row.caught_by {
                let fails = optional == Optional::Require || row.spec == Breaks;
                let run = Run {
                    mutant: row.mutant,
                    optional,
                    check,
                    failure: fails.then_some(fragment),
                };
                runs.push((base, run));
            }
        }
        for &check in CHECKS {
            let run = Run {
                mutant: Identity,
                optional,
                check,
                failure: None,
            };
            runs.push((&bases[mutants.len() - 1], run));
        }
    }
    let tasks: Vec<_> = runs
        .into_iter()
        .map(|(base, run)| {
            let conformance = Conformance::new(base).with_optional(run.optional);
            let task = tokio::spawn(async move { conformance.run_check(run.check).await });
            (run, task)
        })
        .collect();

    let mut problems = Vec::new();
    for (run, task) in tasks {
        let result = task.await.expect("a check task").expect("a known check");
        problems.extend(run.judge(result));
    }
    assert!(problems.is_empty(), "{problems:#?}");
}
