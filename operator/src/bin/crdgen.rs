//! Prints the CRDs as one multi-document YAML stream, or with `--out DIR`
//! writes one file per CRD (what `crds/` holds).
use std::path::PathBuf;

use clap::Parser;

#[derive(Parser)]
#[command(about = "Generate the sorcha.dev CustomResourceDefinitions")]
struct Args {
    /// Directory to write one YAML file per CRD into (e.g. `crds`).
    #[arg(long)]
    out: Option<PathBuf>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let crds = sorcha_operator::crd::crd_yaml();
    match args.out {
        Some(dir) => {
            std::fs::create_dir_all(&dir)?;
            for (file, yaml) in crds {
                let path = dir.join(file);
                std::fs::write(&path, yaml)?;
                eprintln!("wrote {}", path.display());
            }
        }
        None => {
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
