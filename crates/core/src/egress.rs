//! Security policy for the two privileged things a registration makes MCPO do
//! on its own hosts.
//!
//! 1. **Running a command.** Registering a stdio MCP server means MCPO will
//!    execute that command. [`StdioPolicy`] is an operator-written allowlist
//!    (`MCPO_STDIO_ALLOWED_COMMANDS`) of commands and required leading
//!    arguments; nothing runs by default. Environment variables that change
//!    *what* runs (`PATH`, `LD_PRELOAD`, `NODE_OPTIONS`, package-registry
//!    settings, ...) are refused even for allowed commands, otherwise an
//!    allowed `npx -y @vendor/server` could be made to load anything.
//! 2. **Connecting out.** Registering a URL makes MCPO's hosts open
//!    connections, which from inside our network reach things the registrant
//!    cannot: loopback services, the private network, the cloud metadata
//!    endpoint (169.254.169.254). [`EgressPolicy`] only lets MCPO connect to
//!    public addresses, plus what an operator allows (`MCPO_EGRESS_ALLOW`).
//!
//! Checking the URL once at registration is not enough, so the checks happen
//! in three places:
//!
//! * [`EgressPolicy::check_destination`] at registration, for a clean early
//!   error ("`metadata.internal` resolves to 169.254.169.254 ...").
//! * The DNS resolver installed by [`EgressPolicy::apply`], used by reqwest
//!   for *every* connection. It hands reqwest only vetted addresses, so the
//!   address checked is the address connected to: a name that resolved to a
//!   public address at registration and later resolves to a private one (DNS
//!   rebinding) is still refused, and there is no window between check and
//!   connect.
//! * The redirect policy installed by [`EgressPolicy::apply`], which vets
//!   every hop: a public server answering `302 Location:
//!   http://169.254.169.254/` is refused, and names in redirects go through
//!   the resolver above.
//!
//! What the client cannot see, the caller must check:
//!
//! * reqwest does not consult the resolver for IP-literal hosts, so a URL
//!   supplied by a registrant must pass [`EgressPolicy::check_url`] (or
//!   `check_destination`) before the first request. Redirects are covered.
//! * `apply` disables proxies: a proxy resolves and connects on our behalf,
//!   so neither the resolver nor the address checks would see the real
//!   destination. Do not add `ClientBuilder::resolve` overrides afterwards
//!   either; reqwest applies them on top of (bypassing) our resolver.

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};

use ipnet::IpNet;

/// Redirect hops a client built with [`EgressPolicy::apply`] follows. MCP
/// endpoints have no business redirecting much; a short chain also bounds
/// how long one request can be bounced around.
pub const MAX_REDIRECTS: usize = 5;

/// Why MCPO refused to connect somewhere or to run something.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum EgressError {
    #[error("the URL scheme `{scheme}` is not allowed; MCPO only connects to http and https URLs")]
    SchemeNotAllowed { scheme: String },
    #[error("{}", destination_message(.host, *.address))]
    DestinationNotAllowed { host: String, address: IpAddr },
    #[error("cannot resolve `{host}`: {reason}")]
    Unresolvable { host: String, reason: String },
    #[error(
        "the command `{command}` (with these arguments) is not on the stdio allowlist \
         (MCPO_STDIO_ALLOWED_COMMANDS)"
    )]
    CommandNotAllowed { command: String },
    #[error(
        "setting the environment variable `{name}` for a stdio server is not allowed: \
         it can change which program runs or what code it loads"
    )]
    EnvNotAllowed { name: String },
    #[error("the server redirected more than {MAX_REDIRECTS} times; MCPO stops there")]
    TooManyRedirects,
}

impl EgressError {
    /// Finds a policy refusal in an error's `source()` chain. reqwest keeps
    /// the error our resolver or redirect policy returned as a source, but
    /// libraries wrapping reqwest may not; [`EgressViolations`] works even
    /// when the chain was flattened into a string.
    pub fn find_in<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a EgressError> {
        let mut current = Some(error);
        while let Some(e) = current {
            if let Some(found) = e.downcast_ref::<EgressError>() {
                return Some(found);
            }
            current = e.source();
        }
        None
    }
}

fn destination_message(host: &str, address: IpAddr) -> String {
    let category = category(address).unwrap_or("non-public");
    let subject = if host.trim_start_matches('[').trim_end_matches(']') == address.to_string() {
        format!("`{host}` is")
    } else {
        format!("`{host}` resolves to {address},")
    };
    format!(
        "{subject} a non-public ({category}) address MCPO does not connect to; \
         an operator can allow it with MCPO_EGRESS_ALLOW"
    )
}

const LOOPBACK: &str = "loopback";
const PRIVATE: &str = "private";
const LINK_LOCAL: &str = "link-local, which includes cloud metadata at 169.254.169.254";
const UNIQUE_LOCAL: &str = "unique-local";
const SITE_LOCAL: &str = "site-local";
const SHARED: &str = "CGNAT shared address space";
const MULTICAST: &str = "multicast";
const UNSPECIFIED: &str = "unspecified";
const BROADCAST: &str = "broadcast";
const DOCUMENTATION: &str = "documentation";
const RESERVED: &str = "reserved";

/// Why `ip` is not a public address, or `None` if it is. IPv6 forms that
/// carry an IPv4 address (mapped, compatible, NAT64, 6to4) are judged by the
/// embedded address, since that is where the packets end up.
pub fn category(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_category(v4),
        IpAddr::V6(v6) => v6_category(v6),
    }
}

fn v4_category(ip: Ipv4Addr) -> Option<&'static str> {
    const RANGES: &[([u8; 4], u32, &str)] = &[
        // Linux treats a connection to 0.0.0.0 as one to the local host.
        ([0, 0, 0, 0], 8, UNSPECIFIED),
        ([127, 0, 0, 0], 8, LOOPBACK),
        ([10, 0, 0, 0], 8, PRIVATE),
        ([172, 16, 0, 0], 12, PRIVATE),
        ([192, 168, 0, 0], 16, PRIVATE),
        ([169, 254, 0, 0], 16, LINK_LOCAL),
        // Also where some clouds put metadata (Alibaba: 100.100.100.200).
        ([100, 64, 0, 0], 10, SHARED),
        // IETF protocol assignments; Oracle Cloud metadata is 192.0.0.192.
        ([192, 0, 0, 0], 24, RESERVED),
        ([192, 0, 2, 0], 24, DOCUMENTATION),
        ([198, 51, 100, 0], 24, DOCUMENTATION),
        ([203, 0, 113, 0], 24, DOCUMENTATION),
        // Benchmarking.
        ([198, 18, 0, 0], 15, RESERVED),
        // Deprecated 6to4 relay anycast.
        ([192, 88, 99, 0], 24, RESERVED),
        ([224, 0, 0, 0], 4, MULTICAST),
        ([255, 255, 255, 255], 32, BROADCAST),
        ([240, 0, 0, 0], 4, RESERVED),
    ];
    let n = u32::from(ip);
    RANGES
        .iter()
        .find(|(base, len, _)| {
            let mask = u32::MAX << (32 - len);
            n & mask == u32::from_be_bytes(*base) & mask
        })
        .map(|(_, _, category)| *category)
}

fn v6_category(ip: Ipv6Addr) -> Option<&'static str> {
    let n = u128::from(ip);
    let in_net = |base: u128, len: u32| {
        let mask = u128::MAX << (128 - len);
        n & mask == base & mask
    };
    // The IPv4 address in the last 32 bits, for forms that embed one there.
    let low_v4 = Ipv4Addr::from((n & 0xffff_ffff) as u32);

    if ip.is_unspecified() {
        return Some(UNSPECIFIED);
    }
    if ip.is_loopback() {
        return Some(LOOPBACK);
    }
    // ::ffff:a.b.c.d: the socket layer connects to a.b.c.d.
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_category(v4);
    }
    // ::a.b.c.d (deprecated IPv4-compatible) and ::ffff:0:a.b.c.d (SIIT):
    // nothing legitimate uses them, so even a public embedded address is
    // refused.
    if n >> 32 == 0 || n >> 32 == 0xffff_0000 {
        return v4_category(low_v4).or(Some(RESERVED));
    }
    // NAT64 (64:ff9b::/96) is how IPv6-only networks reach IPv4, so a public
    // embedded address is fine; a private one is reached through the gateway.
    if in_net(0x0064_ff9b << 96, 96) {
        return v4_category(low_v4);
    }
    // Local-use NAT64 (64:ff9b:1::/48) translates into the local network.
    if in_net(0x0064_ff9b_0001 << 80, 48) {
        return Some(PRIVATE);
    }
    // 6to4: 2002:AABB:CCDD::/48 tunnels to AA.BB.CC.DD.
    if in_net(0x2002 << 112, 16) {
        return v4_category(Ipv4Addr::from(((n >> 80) & 0xffff_ffff) as u32));
    }
    let ranges: &[(u128, u32, &'static str)] = &[
        (0x2001_0db8 << 96, 32, DOCUMENTATION),
        (0x3fff << 112, 20, DOCUMENTATION),
        // IETF protocol assignments, including Teredo (2001::/32), whose
        // embedded IPv4 address is obfuscated.
        (0x2001 << 112, 23, RESERVED),
        // Discard-only.
        (0x0100 << 112, 64, RESERVED),
        (0xfc00 << 112, 7, UNIQUE_LOCAL),
        (0xfe80 << 112, 10, LINK_LOCAL),
        (0xfec0 << 112, 10, SITE_LOCAL),
        (0xff00 << 112, 8, MULTICAST),
    ];
    if let Some((_, _, category)) = ranges.iter().find(|(base, len, _)| in_net(*base, *len)) {
        return Some(category);
    }
    // Everything outside global unicast (2000::/3) is unassigned or special.
    if !in_net(0x2000 << 112, 3) {
        return Some(RESERVED);
    }
    None
}

/// Where MCPO may connect: public addresses, plus the networks and host names
/// an operator allows. `Default` allows nothing non-public.
#[derive(Clone, Debug, Default)]
pub struct EgressPolicy {
    allow: Vec<IpNet>,
    /// Lowercase, without a trailing dot.
    allow_hosts: Vec<String>,
}

impl EgressPolicy {
    /// Parses a comma-separated allowlist (`MCPO_EGRESS_ALLOW`). Each entry is
    /// a CIDR (`10.0.0.0/8`, `fd00::/8`), an IP address (`10.1.2.3`, meaning
    /// just that address) or a host name (`mcp.internal`, matched exactly and
    /// case-insensitively, allowed whatever it resolves to). Empty entries
    /// are skipped, so an empty string gives the default policy.
    pub fn parse(list: &str) -> Result<EgressPolicy, String> {
        let mut policy = EgressPolicy::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if entry.contains('/') {
                let net: IpNet = entry.parse().map_err(|_| {
                    format!(
                        "egress allowlist entry `{entry}` is not a valid CIDR \
                         (expected something like 10.0.0.0/8 or fd00::/8)"
                    )
                })?;
                policy.allow.push(net.trunc());
            } else if let Ok(ip) = entry
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<IpAddr>()
            {
                policy.allow.push(IpNet::from(ip));
            } else {
                let host = parse_host_entry(entry).map_err(|reason| {
                    format!(
                        "egress allowlist entry `{entry}` is not a CIDR, an IP address \
                         or a host name: {reason}"
                    )
                })?;
                policy.allow_hosts.push(host);
            }
        }
        Ok(policy)
    }

    /// The allowlist, for a startup log line.
    pub fn describe(&self) -> Vec<String> {
        self.allow
            .iter()
            .map(ToString::to_string)
            .chain(self.allow_hosts.iter().cloned())
            .collect()
    }

    /// Whether MCPO may connect to `ip`, reached through the name `host`
    /// (the name is only used to match allowed host names and in the error).
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), EgressError> {
        if category(ip).is_none() || self.net_allowed(ip) || self.host_allowed(host) {
            Ok(())
        } else {
            Err(EgressError::DestinationNotAllowed {
                host: host.to_owned(),
                address: ip,
            })
        }
    }

    /// Checks what can be checked without DNS: the scheme, and the address
    /// if the host is an IP literal. `url::Url` has already turned
    /// `http://2130706433/` and `http://0x7f.1/` into 127.0.0.1.
    pub fn check_url(&self, url: &url::Url) -> Result<(), EgressError> {
        match url.scheme() {
            "http" | "https" => {}
            other => {
                return Err(EgressError::SchemeNotAllowed {
                    scheme: other.to_owned(),
                })
            }
        }
        let host = url.host_str().unwrap_or_default();
        match url.host() {
            Some(url::Host::Ipv4(ip)) => self.check_ip(host, IpAddr::V4(ip)),
            Some(url::Host::Ipv6(ip)) => self.check_ip(host, IpAddr::V6(ip)),
            Some(url::Host::Domain(_)) => Ok(()),
            None => Err(EgressError::Unresolvable {
                host: String::new(),
                reason: "the URL has no host".into(),
            }),
        }
    }

    /// [`check_url`](Self::check_url), then resolves a host name (unless it
    /// is allowlisted) and refuses if any address is forbidden. Used at
    /// registration for a clear error; connections are vetted again by the
    /// client from [`apply`](Self::apply), which matters because the answer
    /// can change. Resolution uses the system resolver and can take seconds;
    /// wrap in a timeout if that matters to the caller.
    pub async fn check_destination(&self, url: &url::Url) -> Result<(), EgressError> {
        self.check_url(url)?;
        let Some(url::Host::Domain(host)) = url.host() else {
            return Ok(());
        };
        if self.host_allowed(host) {
            return Ok(());
        }
        let port = url.port_or_known_default().unwrap_or(0);
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
            .await
            .map_err(|e| EgressError::Unresolvable {
                host: host.to_owned(),
                reason: e.to_string(),
            })?
            .collect();
        if addrs.is_empty() {
            return Err(EgressError::Unresolvable {
                host: host.to_owned(),
                reason: "no addresses found".into(),
            });
        }
        addrs
            .iter()
            .try_for_each(|addr| self.check_ip(host, addr.ip()))
    }

    /// Makes a reqwest client enforce this policy on every connection and
    /// redirect: installs a resolver that drops forbidden addresses, a
    /// redirect policy that vets each hop and stops after
    /// [`MAX_REDIRECTS`], and disables proxies (see the module docs). The
    /// returned [`EgressViolations`] records the first refusal, so a caller
    /// holding an opaque connection error can tell it was the policy. Build
    /// one client per destination if refusals must be attributed precisely.
    pub fn apply(
        &self,
        builder: reqwest::ClientBuilder,
    ) -> (reqwest::ClientBuilder, EgressViolations) {
        let violations = EgressViolations::default();
        let policy = Arc::new(self.clone());
        let resolver = PolicyResolver {
            policy: policy.clone(),
            violations: violations.clone(),
        };
        let recorder = violations.clone();
        let redirect = reqwest::redirect::Policy::custom(move |attempt| {
            // `previous` holds the original URL plus every hop followed.
            if attempt.previous().len() > MAX_REDIRECTS {
                recorder.record(EgressError::TooManyRedirects);
                return attempt.error(EgressError::TooManyRedirects);
            }
            // Host names are vetted by the resolver when reqwest connects.
            match policy.check_url(attempt.url()) {
                Ok(()) => attempt.follow(),
                Err(e) => {
                    recorder.record(e.clone());
                    attempt.error(e)
                }
            }
        });
        let builder = builder.dns_resolver(resolver).redirect(redirect).no_proxy();
        (builder, violations)
    }

    fn net_allowed(&self, ip: IpAddr) -> bool {
        // An allowed 127.0.0.0/8 also covers ::ffff:127.0.0.1.
        let canonical = ip.to_canonical();
        self.allow
            .iter()
            .any(|net| net.contains(&ip) || net.contains(&canonical))
    }

    fn host_allowed(&self, host: &str) -> bool {
        !self.allow_hosts.is_empty() && self.allow_hosts.contains(&normalize_host(host))
    }
}

fn normalize_host(host: &str) -> String {
    host.trim_end_matches('.').to_ascii_lowercase()
}

fn parse_host_entry(entry: &str) -> Result<String, String> {
    let host = normalize_host(entry);
    if host.is_empty() || host.len() > 253 {
        return Err("a host name has 1 to 253 characters".into());
    }
    let valid_label = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if !host.split('.').all(valid_label) {
        return Err("a host name is dot-separated labels of letters, digits, `-` and `_`".into());
    }
    // URL parsing turns such names into IPv4 addresses, so an entry like this
    // would never match a host name.
    let last = host.rsplit('.').next().unwrap_or_default();
    let numeric = last.bytes().all(|b| b.is_ascii_digit())
        || last
            .strip_prefix("0x")
            .is_some_and(|hex| hex.bytes().all(|b| b.is_ascii_hexdigit()));
    if numeric {
        return Err("it looks like an IPv4 address but is not a valid one".into());
    }
    Ok(host)
}

/// The first policy refusal seen by a client from [`EgressPolicy::apply`].
/// Cheap to clone; all clones share the slot.
#[derive(Clone, Debug, Default)]
pub struct EgressViolations(Arc<Mutex<Option<EgressError>>>);

impl EgressViolations {
    /// Returns the recorded refusal, if any, and clears it.
    pub fn take(&self) -> Option<EgressError> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).take()
    }

    fn record(&self, error: EgressError) {
        let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        // The first refusal is the cause; later ones are usually retries.
        if slot.is_none() {
            *slot = Some(error);
        }
    }
}

struct PolicyResolver {
    policy: Arc<EgressPolicy>,
    violations: EgressViolations,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        let violations = self.violations.clone();
        let host = name.as_str().to_owned();
        Box::pin(async move {
            // Port 0 is replaced by reqwest with the URL's port.
            let resolved: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if policy.host_allowed(&host) {
                return Ok(Box::new(resolved.into_iter()) as reqwest::dns::Addrs);
            }
            let mut refused = None;
            let allowed: Vec<SocketAddr> = resolved
                .into_iter()
                .filter(|addr| match policy.check_ip(&host, addr.ip()) {
                    Ok(()) => true,
                    Err(e) => {
                        refused.get_or_insert(e);
                        false
                    }
                })
                .collect();
            // Some addresses left: connect to those. Not a violation, since
            // whatever happens next is not the policy's doing.
            if !allowed.is_empty() {
                return Ok(Box::new(allowed.into_iter()) as reqwest::dns::Addrs);
            }
            let error = refused.unwrap_or_else(|| EgressError::Unresolvable {
                host: host.clone(),
                reason: "no addresses found".into(),
            });
            if matches!(error, EgressError::DestinationNotAllowed { .. }) {
                violations.record(error.clone());
            }
            Err(Box::new(error) as Box<dyn std::error::Error + Send + Sync>)
        })
    }
}

/// Environment variables that make an allowed command run or load something
/// else. Compared case-insensitively. This cannot be exhaustive: the real
/// boundary is the command allowlist, and a rule allowing a bare interpreter
/// (`node`, `python`) allows whatever that interpreter can be told to do.
const EXEC_ENV_NAMES: &[&str] = &[
    "PATH",
    // Where programs find their configuration (`.npmrc`, user-site `.pth`
    // files, `uv.toml`, `.gitconfig`), and what MCPO passes itself.
    "HOME",
    "USER",
    "LOGNAME",
    "TMPDIR",
    // Python starts a browser command from `webbrowser` when told to.
    "BROWSER",
    "NODE_OPTIONS",
    "NODE_PATH",
    "PYTHONPATH",
    "PYTHONSTARTUP",
    "PYTHONHOME",
    "PYTHONUSERBASE",
    "BASH_ENV",
    "ENV",
    "SHELLOPTS",
    "BASHOPTS",
    "PS4",
    "IFS",
    "PERL5OPT",
    "PERL5LIB",
    "PERLLIB",
    "RUBYOPT",
    "RUBYLIB",
    "JAVA_TOOL_OPTIONS",
    "_JAVA_OPTIONS",
    "JDK_JAVA_OPTIONS",
    "CLASSPATH",
    "DOTNET_STARTUP_HOOKS",
    "GCONV_PATH",
    "GIT_SSH",
    "GIT_SSH_COMMAND",
    "GIT_EXEC_PATH",
    "GIT_ASKPASS",
    "GIT_PROXY_COMMAND",
    "GIT_EXTERNAL_DIFF",
];

/// Prefixes of such variables: the dynamic loader, exported bash functions,
/// git configuration (which can name programs to run), and the settings of
/// the package runners (`npx`, `bunx`, `uvx`, `pip`) that choose which
/// package, from which registry, gets downloaded and run.
const EXEC_ENV_PREFIXES: &[&str] = &[
    "LD_",
    "DYLD_",
    "BASH_FUNC_",
    "GIT_CONFIG",
    "NPM_CONFIG_",
    "BUN_CONFIG_",
    "UV_",
    "PIP_",
    "LUA_INIT",
    // Every interpreter's own switches, whatever their names.
    "PYTHON",
    "NODE_",
    "XDG_",
    "COREPACK_",
];

fn changes_execution(name: &str) -> bool {
    // A name containing `=` sets the variable named by the part before it
    // (`PATH=/tmp` with value `x` sets PATH to `/tmp=x`), so refuse outright.
    if name.is_empty() || name.contains('=') {
        return true;
    }
    let name = name.to_ascii_uppercase();
    // Only says which mode a Node program runs in.
    if name == "NODE_ENV" {
        return false;
    }
    EXEC_ENV_NAMES.contains(&name.as_str())
        || EXEC_ENV_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

/// Which commands a stdio registration may run. `Default` allows nothing.
#[derive(Clone, Debug, Default)]
pub struct StdioPolicy {
    rules: Vec<CommandRule>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
struct CommandRule {
    /// `None` for `*`: any command.
    command: Option<String>,
    leading_args: Vec<String>,
}

impl CommandRule {
    fn matches(&self, command: &str, args: &[String]) -> bool {
        self.command.as_deref().is_none_or(|c| c == command) && args.starts_with(&self.leading_args)
    }

    fn describe(&self) -> String {
        let quote = |word: &str| {
            if word.is_empty() || word.contains(char::is_whitespace) {
                format!("{word:?}")
            } else {
                word.to_owned()
            }
        };
        let command = match &self.command {
            Some(command) => quote(command),
            None => "* (any command: development only)".to_owned(),
        };
        std::iter::once(command)
            .chain(self.leading_args.iter().map(|a| quote(a)))
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl StdioPolicy {
    /// Parses `MCPO_STDIO_ALLOWED_COMMANDS`: entries separated by `;` or
    /// newlines (not commas, which arguments may contain). Each entry is
    /// whitespace-separated words: the command, compared exactly with the
    /// registered one (`npx`, `/usr/local/bin/mcp-server`), then arguments the
    /// registration's arguments must start with. `npx -y
    /// @modelcontextprotocol/server-everything` allows that package and
    /// nothing else through `npx`; a bare `npx` would allow any package.
    ///
    /// The entry `*` allows any command. That hands everyone who can register
    /// a server a shell on our hosts; use it only in development.
    ///
    /// Use [`allowing`](Self::allowing) for commands or arguments containing
    /// whitespace.
    pub fn parse(list: &str) -> Result<StdioPolicy, String> {
        let mut rules = Vec::new();
        for entry in list.split([';', '\n', '\r']) {
            let mut words = entry.split_whitespace();
            let Some(command) = words.next() else {
                continue;
            };
            let leading_args: Vec<String> = words.map(str::to_owned).collect();
            if command == "*" && !leading_args.is_empty() {
                return Err(format!(
                    "stdio allowlist entry `{}`: `*` allows any command and takes no arguments",
                    entry.trim()
                ));
            }
            rules.push(CommandRule {
                command: (command != "*").then(|| command.to_owned()),
                leading_args,
            });
        }
        Ok(StdioPolicy { rules })
    }

    /// Builds a policy from `(command, leading arguments)` pairs, for words
    /// that contain whitespace. A command of `*` means any command (see
    /// [`parse`](Self::parse)); its leading arguments still apply.
    pub fn allowing(rules: impl IntoIterator<Item = (String, Vec<String>)>) -> StdioPolicy {
        StdioPolicy {
            rules: rules
                .into_iter()
                .map(|(command, leading_args)| CommandRule {
                    command: (command != "*").then_some(command),
                    leading_args,
                })
                .collect(),
        }
    }

    /// Whether nothing at all may run.
    /// This policy plus one rule: exactly `command` with `args` leading.
    pub fn with(mut self, command: String, args: Vec<String>) -> StdioPolicy {
        self.rules
            .extend(StdioPolicy::allowing([(command, args)]).rules);
        self
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The rules, one line each, for a startup log line.
    pub fn describe(&self) -> Vec<String> {
        self.rules.iter().map(CommandRule::describe).collect()
    }

    /// Whether a stdio server with this command line and environment may be
    /// registered and started.
    pub fn check(
        &self,
        command: &str,
        args: &[String],
        env: &BTreeMap<String, String>,
    ) -> Result<(), EgressError> {
        if !self.rules.iter().any(|rule| rule.matches(command, args)) {
            return Err(EgressError::CommandNotAllowed {
                command: command.to_owned(),
            });
        }
        match env.keys().find(|name| changes_execution(name)) {
            Some(name) => Err(EgressError::EnvNotAllowed { name: name.clone() }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn url(s: &str) -> url::Url {
        url::Url::parse(s).unwrap()
    }

    #[test]
    fn categories() {
        let cases = [
            ("127.0.0.1", Some(LOOPBACK)),
            ("127.255.255.254", Some(LOOPBACK)),
            ("10.0.0.1", Some(PRIVATE)),
            ("10.255.255.255", Some(PRIVATE)),
            ("172.16.0.1", Some(PRIVATE)),
            ("172.31.255.255", Some(PRIVATE)),
            ("172.32.0.1", None),
            ("172.15.255.255", None),
            ("192.168.1.1", Some(PRIVATE)),
            ("169.254.169.254", Some(LINK_LOCAL)),
            ("100.64.0.1", Some(SHARED)),
            ("100.100.100.200", Some(SHARED)),
            ("100.128.0.1", None),
            ("0.0.0.0", Some(UNSPECIFIED)),
            ("0.1.2.3", Some(UNSPECIFIED)),
            ("192.0.0.192", Some(RESERVED)),
            ("192.0.2.1", Some(DOCUMENTATION)),
            ("198.51.100.7", Some(DOCUMENTATION)),
            ("203.0.113.9", Some(DOCUMENTATION)),
            ("198.18.0.1", Some(RESERVED)),
            ("198.19.255.255", Some(RESERVED)),
            ("198.20.0.1", None),
            ("224.0.0.1", Some(MULTICAST)),
            ("239.255.255.250", Some(MULTICAST)),
            ("240.0.0.1", Some(RESERVED)),
            ("255.255.255.255", Some(BROADCAST)),
            ("8.8.8.8", None),
            ("1.1.1.1", None),
            ("::1", Some(LOOPBACK)),
            ("::", Some(UNSPECIFIED)),
            ("fe80::1", Some(LINK_LOCAL)),
            ("febf::1", Some(LINK_LOCAL)),
            ("fec0::1", Some(SITE_LOCAL)),
            ("fc00::1", Some(UNIQUE_LOCAL)),
            ("fd00:ec2::254", Some(UNIQUE_LOCAL)),
            ("ff02::1", Some(MULTICAST)),
            ("::ffff:127.0.0.1", Some(LOOPBACK)),
            ("::ffff:169.254.169.254", Some(LINK_LOCAL)),
            ("::ffff:10.0.0.1", Some(PRIVATE)),
            ("::ffff:8.8.8.8", None),
            ("::127.0.0.1", Some(LOOPBACK)),
            ("::8.8.8.8", Some(RESERVED)),
            ("::ffff:0:127.0.0.1", Some(LOOPBACK)),
            ("64:ff9b::127.0.0.1", Some(LOOPBACK)),
            ("64:ff9b::a9fe:a9fe", Some(LINK_LOCAL)),
            ("64:ff9b::8.8.8.8", None),
            ("64:ff9b:1::1", Some(PRIVATE)),
            ("2002:7f00:1::1", Some(LOOPBACK)),
            ("2002:a9fe:a9fe::", Some(LINK_LOCAL)),
            ("2002:808:808::1", None),
            ("2001::1", Some(RESERVED)),
            ("2001:db8::1", Some(DOCUMENTATION)),
            ("3fff::1", Some(DOCUMENTATION)),
            ("100::1", Some(RESERVED)),
            ("4000::1", Some(RESERVED)),
            ("2606:4700::1111", None),
            ("2001:4860:4860::8888", None),
        ];
        for (address, expected) in cases {
            assert_eq!(category(ip(address)), expected, "{address}");
        }
    }

    #[test]
    fn check_ip_refuses_non_public_and_names_the_category() {
        let policy = EgressPolicy::default();
        assert_eq!(policy.check_ip("dns.google", ip("8.8.8.8")), Ok(()));
        assert_eq!(policy.check_ip("one.one", ip("2606:4700::1111")), Ok(()));
        let err = policy
            .check_ip("metadata.example", ip("169.254.169.254"))
            .unwrap_err();
        assert_eq!(
            err,
            EgressError::DestinationNotAllowed {
                host: "metadata.example".into(),
                address: ip("169.254.169.254"),
            }
        );
        let message = err.to_string();
        assert!(
            message.starts_with("`metadata.example` resolves to 169.254.169.254,"),
            "{message}"
        );
        assert!(message.contains("link-local"), "{message}");
        assert!(message.contains("MCPO_EGRESS_ALLOW"), "{message}");
        let literal = policy.check_ip("[::1]", ip("::1")).unwrap_err().to_string();
        assert!(
            literal.starts_with("`[::1]` is a non-public (loopback) address"),
            "{literal}"
        );
    }

    #[test]
    fn parse_allowlists() {
        let policy =
            EgressPolicy::parse(" 127.0.0.0/8, ::1/128,10.1.2.3 , MCP.Internal., [fd00::1],")
                .unwrap();
        assert_eq!(
            policy.describe(),
            [
                "127.0.0.0/8",
                "::1/128",
                "10.1.2.3/32",
                "fd00::1/128",
                "mcp.internal"
            ]
        );
        assert!(policy.check_ip("x", ip("127.9.9.9")).is_ok());
        assert!(policy.check_ip("x", ip("::ffff:127.0.0.1")).is_ok());
        assert!(policy.check_ip("x", ip("::1")).is_ok());
        assert!(policy.check_ip("x", ip("10.1.2.3")).is_ok());
        assert!(policy.check_ip("x", ip("10.1.2.4")).is_err());
        assert!(policy.check_ip("x", ip("fd00::1")).is_ok());
        assert!(policy.check_ip("x", ip("fd00::2")).is_err());
        assert!(policy.check_ip("mcp.internal", ip("10.9.9.9")).is_ok());
        assert!(policy.check_ip("MCP.INTERNAL.", ip("10.9.9.9")).is_ok());
        assert!(policy.check_ip("other.internal", ip("10.9.9.9")).is_err());

        // Host bits are dropped, the network is what counts.
        let policy = EgressPolicy::parse("10.1.2.3/8").unwrap();
        assert_eq!(policy.describe(), ["10.0.0.0/8"]);

        assert!(EgressPolicy::parse("").unwrap().describe().is_empty());
        assert!(EgressPolicy::parse(" , ").unwrap().describe().is_empty());
    }

    #[test]
    fn parse_rejects_bad_entries_naming_them() {
        for bad in [
            "10.0.0.0/33",
            "10.0.0/8",
            "fd00::/129",
            "http://mcp.internal",
            "mcp internal",
            "mcp..internal",
            "10.1.2",
            "999.1.1.1",
            "0x7f.0x1",
            "fe80::1%eth0",
        ] {
            let err = EgressPolicy::parse(&format!("127.0.0.1, {bad}")).unwrap_err();
            assert!(err.contains(&format!("`{bad}`")), "{bad}: {err}");
        }
    }

    #[test]
    fn check_url_schemes_and_ip_literals() {
        let policy = EgressPolicy::default();
        for refused in [
            "http://127.0.0.1:1/",
            "http://[::1]/",
            "http://2130706433/",
            "http://0x7f.1/",
            "http://0177.0.0.1/",
            "https://169.254.169.254/latest/meta-data/",
            "http://[::ffff:127.0.0.1]/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://0.0.0.0:8080/",
            "http://user@10.0.0.1/",
        ] {
            assert!(
                matches!(
                    policy.check_url(&url(refused)),
                    Err(EgressError::DestinationNotAllowed { .. })
                ),
                "{refused}"
            );
        }
        assert_eq!(
            policy.check_url(&url("ftp://example.com/")),
            Err(EgressError::SchemeNotAllowed {
                scheme: "ftp".into()
            })
        );
        assert_eq!(
            policy.check_url(&url("file:///etc/passwd")),
            Err(EgressError::SchemeNotAllowed {
                scheme: "file".into()
            })
        );
        assert!(matches!(
            policy.check_url(&url("gopher://127.0.0.1/")),
            Err(EgressError::SchemeNotAllowed { .. })
        ));
        // Names are left to the resolver.
        assert_eq!(policy.check_url(&url("https://localhost/")), Ok(()));
        assert_eq!(policy.check_url(&url("https://8.8.8.8/mcp")), Ok(()));
        assert_eq!(policy.check_url(&url("https://[2606:4700::1111]/")), Ok(()));
    }

    #[test]
    fn check_url_honours_the_allowlist() {
        let nets = EgressPolicy::parse("127.0.0.1/32").unwrap();
        assert_eq!(nets.check_url(&url("http://127.0.0.1:8080/mcp")), Ok(()));
        assert_eq!(nets.check_url(&url("http://2130706433/")), Ok(()));
        assert!(nets.check_url(&url("http://127.0.0.2/")).is_err());
        assert!(nets.check_url(&url("http://[::1]/")).is_err());

        let hosts = EgressPolicy::parse("mcp.internal").unwrap();
        assert_eq!(hosts.check_url(&url("http://MCP.internal:9000/")), Ok(()));
        assert!(hosts.check_url(&url("http://127.0.0.1/")).is_err());
    }

    #[tokio::test]
    async fn check_destination_resolves_names() {
        let policy = EgressPolicy::default();
        let err = policy
            .check_destination(&url("http://localhost:1/"))
            .await
            .unwrap_err();
        assert!(
            matches!(&err, EgressError::DestinationNotAllowed { host, address }
                if host == "localhost" && address.is_loopback()),
            "{err:?}"
        );
        assert!(matches!(
            policy
                .check_destination(&url("http://does-not-exist.invalid/"))
                .await,
            Err(EgressError::Unresolvable { .. })
        ));
        assert!(matches!(
            policy.check_destination(&url("http://[::1]:1/")).await,
            Err(EgressError::DestinationNotAllowed { .. })
        ));
        assert!(matches!(
            policy.check_destination(&url("ftp://localhost/")).await,
            Err(EgressError::SchemeNotAllowed { .. })
        ));

        // Allowlisted names are not even resolved.
        let named = EgressPolicy::parse("does-not-exist.invalid, localhost").unwrap();
        assert_eq!(
            named
                .check_destination(&url("http://does-not-exist.invalid/"))
                .await,
            Ok(())
        );
        assert_eq!(
            named.check_destination(&url("http://localhost:1/")).await,
            Ok(())
        );
    }

    /// A one-response-per-connection HTTP server on 127.0.0.1. `respond`
    /// gets the server's own port. Returns the port and a connection count.
    async fn serve(respond: impl Fn(u16) -> String + Send + 'static) -> (u16, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counter = connections.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counter.fetch_add(1, Ordering::SeqCst);
                let mut request = Vec::new();
                let mut buf = [0u8; 1024];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buf).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => request.extend_from_slice(&buf[..n]),
                    }
                }
                let _ = stream.write_all(respond(port).as_bytes()).await;
                let _ = stream.shutdown().await;
            }
        });
        (port, connections)
    }

    fn redirect_to(location: &str) -> String {
        format!(
            "HTTP/1.1 302 Found\r\nLocation: {location}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        )
    }

    const OK: &str = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

    fn policy_client(policy: &EgressPolicy) -> (reqwest::Client, EgressViolations) {
        let (builder, violations) = policy.apply(reqwest::Client::builder());
        let client = builder.timeout(Duration::from_secs(10)).build().unwrap();
        (client, violations)
    }

    #[tokio::test]
    async fn client_refuses_redirect_to_metadata() {
        let (port, connections) =
            serve(|_| redirect_to("http://169.254.169.254/latest/meta-data/")).await;
        let policy = EgressPolicy::parse("127.0.0.1/32").unwrap();
        let (client, violations) = policy_client(&policy);

        let err = client
            .get(format!("http://127.0.0.1:{port}/mcp"))
            .send()
            .await
            .unwrap_err();
        assert!(err.is_redirect(), "{err:?}");
        let expected = EgressError::DestinationNotAllowed {
            host: "169.254.169.254".into(),
            address: ip("169.254.169.254"),
        };
        assert_eq!(EgressError::find_in(&err), Some(&expected));
        assert_eq!(violations.take(), Some(expected));
        assert_eq!(violations.take(), None);
        assert_eq!(connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn client_resolver_refuses_names_resolving_to_private_addresses() {
        let (port, connections) = serve(|_| OK.to_owned()).await;
        let (client, violations) = policy_client(&EgressPolicy::default());

        let err = client
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert!(err.is_connect(), "{err:?}");
        let violation = violations.take();
        assert!(
            matches!(&violation, Some(EgressError::DestinationNotAllowed { host, address })
                if host == "localhost" && address.is_loopback()),
            "{violation:?}"
        );
        assert!(
            matches!(
                EgressError::find_in(&err),
                Some(EgressError::DestinationNotAllowed { .. })
            ),
            "{err:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(connections.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn client_resolver_vets_names_reached_by_redirect() {
        // The literal 127.0.0.1 is allowed, the name `localhost` is not: the
        // redirect passes `check_url` (it names a host) and is stopped when
        // reqwest resolves it.
        let (target, target_connections) = serve(|_| OK.to_owned()).await;
        let (port, _) = serve(move |_| redirect_to(&format!("http://localhost:{target}/"))).await;
        let policy = EgressPolicy::parse("127.0.0.1/32").unwrap();
        let (client, violations) = policy_client(&policy);

        // localhost also resolves to 127.0.0.1, which this policy allows.
        let response = client
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(violations.take(), None);
        assert_eq!(target_connections.load(Ordering::SeqCst), 1);

        // With nothing allowed, the name in the redirect is refused when
        // reqwest resolves it. (The first request reaches 127.0.0.1 because
        // the client does not vet IP literals it is handed directly; callers
        // run `check_url` first for that.)
        let (client, violations) = policy_client(&EgressPolicy::default());
        let err = client
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        let violation = violations.take();
        assert!(
            matches!(&violation, Some(EgressError::DestinationNotAllowed { host, .. })
                if host == "localhost"),
            "{violation:?} {err:?}"
        );
        assert_eq!(target_connections.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn client_allows_allowlisted_names_and_nets() {
        let (port, connections) = serve(|_| OK.to_owned()).await;

        let (client, violations) = policy_client(&EgressPolicy::parse("localhost").unwrap());
        let response = client
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.text().await.unwrap(), "ok");
        assert_eq!(violations.take(), None);

        let (client, violations) = policy_client(&EgressPolicy::parse("127.0.0.0/8").unwrap());
        let response = client
            .get(format!("http://localhost:{port}/"))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        assert_eq!(violations.take(), None);
        assert_eq!(connections.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn client_stops_after_max_redirects() {
        let (port, connections) =
            serve(|port| redirect_to(&format!("http://127.0.0.1:{port}/again"))).await;
        let (client, violations) = policy_client(&EgressPolicy::parse("127.0.0.1").unwrap());
        let err = client
            .get(format!("http://127.0.0.1:{port}/"))
            .send()
            .await
            .unwrap_err();
        assert!(err.is_redirect(), "{err:?}");
        assert_eq!(violations.take(), Some(EgressError::TooManyRedirects));
        assert_eq!(connections.load(Ordering::SeqCst), MAX_REDIRECTS + 1);
    }

    fn args(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| w.to_string()).collect()
    }

    fn env(names: &[&str]) -> BTreeMap<String, String> {
        names
            .iter()
            .map(|n| (n.to_string(), "x".to_string()))
            .collect()
    }

    #[test]
    fn stdio_default_allows_nothing() {
        let policy = StdioPolicy::default();
        assert!(policy.is_empty());
        let err = policy.check("npx", &[], &env(&[])).unwrap_err();
        assert_eq!(
            err,
            EgressError::CommandNotAllowed {
                command: "npx".into()
            }
        );
        assert!(err.to_string().contains("MCPO_STDIO_ALLOWED_COMMANDS"));
    }

    #[test]
    fn stdio_exact_and_leading_argument_matches() {
        let policy = StdioPolicy::parse(
            "npx -y @modelcontextprotocol/server-everything; /usr/local/bin/mcp-server\n\n uvx  mcp-server-time ;",
        )
        .unwrap();
        assert!(!policy.is_empty());
        let none = env(&[]);

        assert_eq!(
            policy.check(
                "npx",
                &args(&["-y", "@modelcontextprotocol/server-everything"]),
                &none
            ),
            Ok(())
        );
        assert_eq!(
            policy.check(
                "npx",
                &args(&["-y", "@modelcontextprotocol/server-everything", "stdio"]),
                &none
            ),
            Ok(())
        );
        for refused in [
            args(&["-y", "@evil/server"]),
            args(&["@modelcontextprotocol/server-everything"]),
            args(&["-y"]),
            args(&[]),
            args(&["--", "-y", "@modelcontextprotocol/server-everything"]),
        ] {
            assert!(
                matches!(
                    policy.check("npx", &refused, &none),
                    Err(EgressError::CommandNotAllowed { .. })
                ),
                "{refused:?}"
            );
        }

        assert_eq!(
            policy.check("/usr/local/bin/mcp-server", &args(&["--any"]), &none),
            Ok(())
        );
        assert!(policy.check("mcp-server", &[], &none).is_err());
        assert!(policy
            .check("/usr/local/bin/../bin/mcp-server", &[], &none)
            .is_err());
        assert!(policy.check("/usr/bin/npx", &args(&["-y"]), &none).is_err());
        assert!(policy.check("NPX", &args(&["-y"]), &none).is_err());
        assert_eq!(
            policy.check("uvx", &args(&["mcp-server-time"]), &none),
            Ok(())
        );

        assert_eq!(
            policy.describe(),
            [
                "npx -y @modelcontextprotocol/server-everything",
                "/usr/local/bin/mcp-server",
                "uvx mcp-server-time"
            ]
        );
    }

    #[test]
    fn stdio_wildcard() {
        let policy = StdioPolicy::parse("*").unwrap();
        assert_eq!(
            policy.check("/bin/anything", &args(&["at", "all"]), &env(&[])),
            Ok(())
        );
        assert!(policy.describe()[0].contains("development only"));
        // Even `*` does not let the environment change what runs.
        assert!(matches!(
            policy.check("node", &[], &env(&["NODE_OPTIONS"])),
            Err(EgressError::EnvNotAllowed { .. })
        ));
        let err = StdioPolicy::parse("npx; * -y").unwrap_err();
        assert!(err.contains("`* -y`"), "{err}");
    }

    #[test]
    fn stdio_allowing_keeps_whitespace_in_words() {
        let policy = StdioPolicy::allowing([(
            "/opt/My Servers/mcp".to_string(),
            args(&["--config", "a b.json"]),
        )]);
        assert_eq!(
            policy.check(
                "/opt/My Servers/mcp",
                &args(&["--config", "a b.json", "-v"]),
                &env(&[])
            ),
            Ok(())
        );
        assert!(policy
            .check("/opt/My Servers/mcp", &args(&["--config", "a"]), &env(&[]))
            .is_err());
        assert_eq!(
            policy.describe(),
            [r#""/opt/My Servers/mcp" --config "a b.json""#]
        );
    }

    #[test]
    fn stdio_env_denylist() {
        let policy = StdioPolicy::parse("npx").unwrap();
        for name in [
            "PATH",
            "Path",
            "LD_PRELOAD",
            "ld_preload",
            "LD_LIBRARY_PATH",
            "DYLD_INSERT_LIBRARIES",
            "NODE_OPTIONS",
            "NODE_PATH",
            "PYTHONPATH",
            "BASH_ENV",
            "ENV",
            "IFS",
            "PS4",
            "_JAVA_OPTIONS",
            "GIT_SSH_COMMAND",
            "GIT_CONFIG_COUNT",
            "BASH_FUNC_ls%%",
            "npm_config_registry",
            "NPM_CONFIG_SCRIPT_SHELL",
            "UV_INDEX_URL",
            "PIP_INDEX_URL",
            "PATH=/tmp",
            "",
            "HOME",
            "XDG_CONFIG_HOME",
            "PYTHONWARNINGS",
            "BROWSER",
            "NODE_EXTRA_CA_CERTS",
        ] {
            assert_eq!(
                policy.check("npx", &[], &env(&["API_KEY", name])),
                Err(EgressError::EnvNotAllowed { name: name.into() }),
                "{name}"
            );
        }
        assert_eq!(
            policy.check(
                "npx",
                &[],
                &env(&["API_KEY", "GITHUB_TOKEN", "LOG_LEVEL", "NODE_ENV", "PATHS"])
            ),
            Ok(())
        );
        let message = EgressError::EnvNotAllowed {
            name: "LD_PRELOAD".into(),
        }
        .to_string();
        assert!(message.contains("`LD_PRELOAD`"), "{message}");
    }
}
