//! Prints the CRDs as one multi-document YAML stream, or with `--out DIR`
//! (repeatable) writes one file per CRD into each DIR: `crds/` and the Helm
//! chart's copy, which must live inside the chart because Helm cannot read
//! files outside it.
use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Generate the sorcha.dev CustomResourceDefinitions")]
struct Args {
    /// Directory to write one YAML file per CRD into (e.g. `crds`); may be
    /// given more than once.
    #[arg(long)]
    out: Vec<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let crds = sorcha_operator::crd::crd_yaml();
    match args.out.as_slice() {
        [_, ..] => {
            for dir in &args.out {
                std::fs::create_dir_all(dir)?;
                for (file, yaml) in &crds {
                    let path = dir.join(file);
                    std::fs::write(&path, yaml)?;
                    eprintln!("wrote {}", path.display());
                }
            }
        }
        [] => {
            use std::io::Write;
            let mut out = std::io::stdout().lock();
            for (_, yaml) in crds {
                match write!(out, "---\n{yaml}") {
                    // `crdgen | head` is not an error.
                    Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                    other => other?,
                }
            }
        }
    }
    Ok(())
}
