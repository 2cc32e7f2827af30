//! The README's code blocks are the code of `src/bin/readme_pipeline.rs` and
//! `src/bin/readme_tools.rs`, which compile (and the tool loop runs in a test below).
#![allow(clippy::unwrap_used, clippy::expect_used)]

fn normalise(code: &str) -> Vec<String> {
    code.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn readme_block_is_example(marker: &str, example: &str, name: &str) {
    let readme = include_str!("../../README.md");
    let start = readme
        .find(marker)
        .unwrap_or_else(|| panic!("README marks its example with {marker}"));
    let block = &readme[start..];
    let block = &block[block.find("```rust\n").unwrap() + 8..];
    let block = &block[..block.find("```").unwrap()];
    let begin = example.find("// README-BEGIN").unwrap() + "// README-BEGIN".len();
    let end = example.find("// README-END").unwrap();
    assert_eq!(
        normalise(block),
        normalise(&example[begin..end]),
        "README.md's block after {marker} differs from examples/src/bin/{name}"
    );
}

#[test]
fn the_readme_pipeline_is_the_compiled_example() {
    readme_block_is_example(
        "<!-- pipeline-example -->",
        include_str!("../src/bin/readme_pipeline.rs"),
        "readme_pipeline.rs",
    );
}

#[test]
fn the_readme_tool_loop_is_the_compiled_example() {
    readme_block_is_example(
        "<!-- tools-example -->",
        include_str!("../src/bin/readme_tools.rs"),
        "readme_tools.rs",
    );
}

#[test]
fn the_tool_loop_runs() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_readme_tools"))
        .output()
        .expect("the example runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("It is 21 °C in Paris."), "{text}");
}
