//! The README's pipeline code is the code of `src/bin/readme_pipeline.rs`, which compiles.
#![allow(clippy::unwrap_used, clippy::expect_used)]

fn normalise(code: &str) -> Vec<String> {
    code.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn the_readme_pipeline_is_the_compiled_example() {
    let readme = include_str!("../../README.md");
    let example = include_str!("../src/bin/readme_pipeline.rs");
    let start = readme
        .find("<!-- pipeline-example -->")
        .expect("README marks its pipeline example");
    let block = &readme[start..];
    let block = &block[block.find("```rust\n").unwrap() + 8..];
    let block = &block[..block.find("```").unwrap()];
    let begin = example.find("// README-BEGIN").unwrap() + "// README-BEGIN".len();
    let end = example.find("// README-END").unwrap();
    assert_eq!(
        normalise(block),
        normalise(&example[begin..end]),
        "README.md's pipeline differs from examples/src/bin/readme_pipeline.rs"
    );
}
