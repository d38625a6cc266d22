package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"text/template"
	"time"

	"github.com/mecd/mecd/internal/dashboard"
)

// Version is set at build time (-ldflags "-X main.Version=v1.2.3"); else
// the module version or VCS revision the binary was built from.
var Version = ""

func version() string {
	if Version != "" {
		return Version
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return "devel"
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	for _, s := range bi.Settings {
		if s.Key == "vcs.revision" && len(s.Value) >= 12 {
			return "devel-" + s.Value[:12]
		}
	}
	return "devel"
}

var versionCmd = &command{
	name:    "version",
	summary: "print mecctl's version",
	flags: func(a *App, fs *flag.FlagSet) func(context.Context, []string) error {
		return func(ctx context.Context, args []string) error {
			fmt.Fprintf(a.stdout, "mecctl %s (%s, %s/%s)\n", version(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
			return nil
		}
	},
}

var dashboardCmd = &command{
	name:    "dashboard",
	summary: "serve the web dashboard on 127.0.0.1, proxying to the API with your credentials",
	detail: `The page lists every MEC in every region with its progress, nodes and expiry,
creates, deletes and downloads kubeconfigs. Its API calls go to this process,
which signs them: your AWS credentials never reach the browser. It listens on
127.0.0.1 only and answers only pages that come from it. Ctrl-C stops it.`,
	flags: func(a *App, fs *flag.FlagSet) func(context.Context, []string) error {
		port := fs.Int("port", 8080, "port on 127.0.0.1 (0: any free port)")
		return func(ctx context.Context, args []string) error {
			if len(args) > 0 {
				return usagef("dashboard", "no arguments expected")
			}
			if *port < 0 || *port > 65535 {
				return usagef("dashboard", "--port %d: want 0-65535", *port)
			}
			c, err := a.client(ctx)
			if err != nil {
				return err
			}
			ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(*port)))
			if err != nil {
				return fmt.Errorf("dashboard: %w", err)
			}
			srv := &http.Server{
				Handler:           dashboard.New(c, slog.New(slog.NewTextHandler(a.stderr, nil))).Handler(),
				ReadHeaderTimeout: 10 * time.Second,
			}
			fmt.Fprintf(a.stdout, "Dashboard: http://%s/  (API %s, signing for %s; Ctrl-C stops)\n", ln.Addr(), c.Endpoint, c.Region)
			errc := make(chan error, 1)
			go func() { errc <- srv.Serve(ln) }()
			select {
			case err := <-errc:
				return fmt.Errorf("dashboard: %w", err)
			case <-ctx.Done():
			}
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("dashboard: %w", err)
			}
			fmt.Fprintln(a.stdout, "Dashboard stopped.")
			return nil
		}
	},
}

var completionCmd = &command{
	name:    "completion",
	args:    "bash|zsh",
	summary: "print a shell completion script",
	detail: `  source <(mecctl completion bash)            # bash, this shell
  mecctl completion zsh > "${fpath[1]}/_mecctl"  # zsh, then restart it`,
	flags: func(a *App, fs *flag.FlagSet) func(context.Context, []string) error {
		return func(ctx context.Context, args []string) error {
			if len(args) != 1 || (args[0] != "bash" && args[0] != "zsh") {
				return usagef("completion", "want bash or zsh")
			}
			data := completionData{}
			for _, c := range commands() {
				words := strings.Join(a.flagNames(c), " ")
				if c.name == "completion" {
					words = "bash zsh"
				}
				data.Commands = append(data.Commands, completionCommand{Name: c.name, Flags: words})
			}
			t := bashCompletion
			if args[0] == "zsh" {
				t = zshCompletion
			}
			return template.Must(template.New("c").Parse(t)).Execute(a.stdout, data)
		}
	},
}

type completionCommand struct{ Name, Flags string }

type completionData struct{ Commands []completionCommand }

func (d completionData) Names() string {
	var n []string
	for _, c := range d.Commands {
		n = append(n, c.Name)
	}
	return strings.Join(append(n, "help"), " ")
}

// The scripts complete commands, flags and values known offline; MEC
// names would need an API call per keystroke, so they are not completed.
const bashCompletion = `# bash completion for mecctl
_mecctl() {
  local cur prev cmd i
  cur="${COMP_WORDS[COMP_CWORD]}"
  prev="${COMP_WORDS[COMP_CWORD-1]}"
  cmd=""
  for ((i = 1; i < COMP_CWORD; i++)); do
    case "${COMP_WORDS[i]}" in
      -*) ;;
      *) cmd="${COMP_WORDS[i]}"; break ;;
    esac
  done
  case "$prev" in
    -o) COMPREPLY=($(compgen -W "table json yaml" -- "$cur")); [[ "$cmd" == kubeconfig ]] && COMPREPLY=($(compgen -f -- "$cur")); return ;;
    --status|-status) COMPREPLY=($(compgen -W "CREATING READY FAILED DELETING DELETED" -- "$cur")); return ;;
    -f|--kubeconfig|-kubeconfig) COMPREPLY=($(compgen -f -- "$cur")); return ;;
  esac
  if [[ -z "$cmd" ]]; then
    COMPREPLY=($(compgen -W "{{.Names}} --endpoint --profile --api-region --stack --help" -- "$cur"))
    return
  fi
  case "$cmd" in
{{- range .Commands}}
    {{.Name}}) COMPREPLY=($(compgen -W "{{.Flags}}" -- "$cur")) ;;
{{- end}}
  esac
}
complete -F _mecctl mecctl
`

const zshCompletion = `#compdef mecctl
# zsh completion for mecctl
_mecctl() {
  local -a cmds
  cmds=({{.Names}})
  if (( CURRENT == 2 )); then
    _describe 'command' cmds
    return
  fi
  case "${words[CURRENT-1]}" in
    -o) _values 'output' table json yaml; return ;;
    --status) _values 'status' CREATING READY FAILED DELETING DELETED; return ;;
    -f|--kubeconfig) _files; return ;;
  esac
  case "${words[2]}" in
{{- range .Commands}}
    {{.Name}}) compadd -- {{.Flags}} ;;
{{- end}}
  esac
}
compdef _mecctl mecctl
`
