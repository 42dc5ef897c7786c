//! Runs the SQLite sqllogictest corpus (`shared/conformance/sqlite-slt`, beside the repository) against
//! embedded QubeDB, writes `conformance/RESULTS.md`, and fails if fewer records pass than
//! `conformance/baseline.json` records. After an improvement, raise the baseline with
//! `QUBEDB_UPDATE_BASELINE=1 cargo test -p qubedb-conformance`.

use std::collections::BTreeMap;
use std::path::Path;

use qubedb_conformance::sqlite::run_corpus;

#[test]
fn sqlite_corpus_does_not_regress() {
    let repository = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let corpus = repository.join("../shared/conformance/sqlite-slt");
    assert!(
        corpus.is_dir(),
        "the conformance corpus must be beside the repository at {}",
        corpus.display()
    );
    let summary = run_corpus(&corpus, None).expect("corpus runs");
    let results = repository.join("conformance/RESULTS.md");
    std::fs::write(&results, summary.report()).expect("write conformance/RESULTS.md");
    let baseline_path = repository.join("conformance/baseline.json");
    if std::env::var_os("QUBEDB_UPDATE_BASELINE").is_some() {
        let counts = BTreeMap::from([("sqlite_passed", summary.total.passed)]);
        let text = serde_json::to_string_pretty(&counts).expect("serialize") + "\n";
        std::fs::write(&baseline_path, text).expect("write baseline");
        return;
    }
    let baseline: BTreeMap<String, u64> = serde_json::from_str(
        &std::fs::read_to_string(&baseline_path).expect("read conformance/baseline.json"),
    )
    .expect("baseline is JSON");
    let floor = baseline["sqlite_passed"];
    assert!(
        summary.total.passed >= floor,
        "SQLite corpus: {} records pass, fewer than the baseline {floor} (see conformance/RESULTS.md)",
        summary.total.passed
    );
    println!(
        "SQLite corpus: {} of {} records pass (baseline {floor})",
        summary.total.passed, summary.total.run
    );
}
