//! Arguments of `iothub completions`.

use clap::Args;
use clap_complete::Shell;

const EXAMPLES: &str = "\
Examples:
  # bash: load now, or install for every new shell
  source <(iothub completions bash)
  iothub completions bash > ~/.local/share/bash-completion/completions/iothub

  # zsh: a directory on $fpath
  iothub completions zsh > ~/.zfunc/_iothub

  # fish
  iothub completions fish > ~/.config/fish/completions/iothub.fish";

/// `iothub completions`.
#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
pub(crate) struct CompletionsArgs {
    /// The shell to generate the completion script for.
    #[arg(value_enum)]
    pub(crate) shell: Shell,
}
