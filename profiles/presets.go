package profiles

import (
	"fmt"
	"net/url"
	"sort"
	"strings"
)

// Params are what the user gives a preset: URLs and a few choices. Which
// are required depends on the preset (Presets).
type Params struct {
	Kernel string
	Initrd []string
	ISO    string // ubuntu-autoinstall: the live-server ISO (casper's url=)
	Repo   string // fedora-kickstart: inst.repo
	Rootfs string // fedora-coreos: coreos.live.rootfs_url
	Mirror string // debian-preseed: the Debian mirror (default http://deb.debian.org/debian)
	Args   string // appended to the kernel command line
}

// preset fills a profile from Params: kind, command line and default files.
// It returns what is wrong with the params, if anything.
type preset struct {
	help string
	// cmdline and files are template sources; {{.params.X}} is not a
	// template variable, so params are spliced into the sources here.
	build func(p Params) (cmdline string, files map[string]string, err error)
	// needsPassword: the default files create a user whose password hash
	// comes from vars.password_hash.
	needsPassword bool
	// param is the one of iso, repo, rootfs and mirror the preset reads;
	// "" for none.
	param string
}

// Presets are the built-in recipes, by name.
var Presets = map[string]preset{
	"ubuntu-autoinstall": {help: "Ubuntu live-server (subiquity): kernel, initrd, iso", build: ubuntu, needsPassword: true, param: "iso"},
	"debian-preseed":     {help: "Debian installer (d-i): kernel, initrd, optional mirror", build: debian, needsPassword: true, param: "mirror"},
	"fedora-kickstart":   {help: "Fedora/RHEL/Alma/Rocky (anaconda): kernel, initrd, repo", build: fedora, needsPassword: true, param: "repo"},
	"flatcar":            {help: "Flatcar Container Linux PXE image, installs to vars.disk: kernel, initrd", build: flatcar},
	"fedora-coreos":      {help: "Fedora CoreOS live PXE, installs to vars.disk: kernel, initrd, rootfs", build: fcos, param: "rootfs"},
	"linux":              {help: "any kernel and initrd with your command line (memtest, rescue, …)", build: plain},
}

// PresetNames lists the presets, sorted.
func PresetNames() []string {
	n := make([]string, 0, len(Presets))
	for k := range Presets {
		n = append(n, k)
	}
	sort.Strings(n)
	return n
}

func args(p Params) string {
	if p.Args == "" {
		return ""
	}
	return " " + p.Args
}

func need(field, val, why string) error {
	if val == "" {
		return fmt.Errorf("%s is required: %s", field, why)
	}
	return nil
}

// The call-back commands, one per tool the installers have.
const (
	wgetPost = `wget -q -O /dev/null --post-data`
	curlPost = `curl -fsS -X POST`
)

func ubuntu(p Params) (string, map[string]string, error) {
	if err := need("iso", p.ISO, "the live-server ISO URL for casper's url= (Ubuntu 24.04 casper panics without it)"); err != nil {
		return "", nil, err
	}
	cmd := "ip=dhcp url=" + p.ISO + " autoinstall ds=nocloud-net;s={{.files_url}}" + args(p)
	files := map[string]string{
		"meta-data":   "instance-id: pxe-pilot-{{.mac_hyphen}}\nlocal-hostname: {{json .hostname}}\n",
		"vendor-data": "",
		"user-data": `#cloud-config
# PXE Pilot autoinstall for {{.mac}} ({{.hostname}}), profile {{.profile}}
autoinstall:
  version: 1
  identity:
    hostname: {{json .hostname}}
    username: {{json (or .vars.username "ubuntu")}}
    password: {{json .vars.password_hash}}
  ssh:
    install-server: true
  reporting:
    pxe-pilot:
      type: webhook
      endpoint: {{.progress_url}}
  late-commands:
    - ` + curlPost + ` -d reporter=subiquity {{.installed_url}}
  error-commands:
    - ` + curlPost + ` -d reporter=subiquity -d reason=autoinstall-error-commands {{.failed_url}}
`,
	}
	return cmd, files, nil
}

func debian(p Params) (string, map[string]string, error) {
	mirror := p.Mirror
	if mirror == "" {
		mirror = "http://deb.debian.org/debian"
	}
	u, err := url.Parse(mirror)
	if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return "", nil, fmt.Errorf("mirror = %q: give the mirror's URL, e.g. http://deb.debian.org/debian", mirror)
	}
	dir := u.Path
	if dir == "" {
		dir = "/"
	}
	cmd := "auto=true priority=critical url={{.files_url}}preseed.cfg interface=auto hostname={{.hostname}} domain={{or .vars.domain \"local\"}}" + args(p)
	files := map[string]string{"preseed.cfg": `# PXE Pilot preseed for {{.mac}} ({{.hostname}}), profile {{.profile}}
d-i preseed/early_command string ` + wgetPost + ` 'reporter=debian-installer&message=preseed-loaded' '{{.progress_url}}' || true
d-i debian-installer/locale string {{or .vars.locale "en_US.UTF-8"}}
d-i keyboard-configuration/xkb-keymap select {{or .vars.keymap "us"}}
d-i netcfg/choose_interface select auto
d-i netcfg/get_hostname string {{.hostname}}
d-i netcfg/get_domain string {{or .vars.domain "local"}}
d-i mirror/country string manual
d-i mirror/protocol string ` + u.Scheme + `
d-i mirror/` + u.Scheme + `/hostname string ` + u.Host + `
d-i mirror/` + u.Scheme + `/directory string ` + dir + `
d-i mirror/` + u.Scheme + `/proxy string
d-i passwd/root-login boolean false
d-i passwd/user-fullname string {{or .vars.username "debian"}}
d-i passwd/username string {{or .vars.username "debian"}}
d-i passwd/user-password-crypted password {{.vars.password_hash}}
d-i clock-setup/utc boolean true
d-i time/zone string {{or .vars.timezone "UTC"}}
d-i partman-auto/disk string {{or .vars.disk ""}}
d-i partman-auto/method string regular
d-i partman-auto/choose_recipe select atomic
d-i partman-partitioning/confirm_write_new_label boolean true
d-i partman/choose_partition select finish
d-i partman/confirm boolean true
d-i partman/confirm_nooverwrite boolean true
tasksel tasksel/first multiselect standard, ssh-server
d-i grub-installer/only_debian boolean true
d-i grub-installer/bootdev string default
d-i finish-install/reboot_in_progress note
d-i preseed/late_command string ` + wgetPost + ` 'reporter=debian-installer' '{{.installed_url}}'
`}
	return cmd, files, nil
}

func fedora(p Params) (string, map[string]string, error) {
	if err := need("repo", p.Repo, "the installation tree for inst.repo= and the kickstart's url, e.g. https://dl.fedoraproject.org/pub/fedora/linux/releases/41/Everything/x86_64/os/"); err != nil {
		return "", nil, err
	}
	cmd := "ip=dhcp inst.repo=" + p.Repo + " inst.ks={{.files_url}}ks.cfg" + args(p)
	files := map[string]string{"ks.cfg": `# PXE Pilot kickstart for {{.mac}} ({{.hostname}}), profile {{.profile}}
text
url --url=` + p.Repo + `
lang {{or .vars.locale "en_US.UTF-8"}}
keyboard {{or .vars.keymap "us"}}
timezone {{or .vars.timezone "UTC"}} --utc
network --bootproto=dhcp --hostname={{.hostname}}
rootpw --lock
user --name={{or .vars.username "admin"}} --groups=wheel --iscrypted --password={{.vars.password_hash}}
{{if .vars.disk}}ignoredisk --only-use={{.vars.disk}}
{{end}}zerombr
clearpart --all --initlabel
autopart
bootloader
reboot

%packages
@core
%end

%pre
` + curlPost + ` -d reporter=anaconda -d message=kickstart-started '{{.progress_url}}' || true
%end

%post --nochroot
` + curlPost + ` -d reporter=anaconda '{{.installed_url}}'
%end

%onerror
` + curlPost + ` -d reporter=anaconda -d reason=anaconda-onerror '{{.failed_url}}'
%end
`}
	return cmd, files, nil
}

// ignitionUnit is an Ignition v3 config with one oneshot unit running cmd.
func ignitionUnit(name, desc, cmd string) string {
	return `{
  "ignition": {"version": "3.3.0"},
  "systemd": {"units": [{
    "name": "` + name + `",
    "enabled": true,
    "contents": {{json (printf "[Unit]\nDescription=` + desc + `\nWants=network-online.target\nAfter=network-online.target\n[Service]\nType=oneshot\nExecStart=/bin/sh -c %s\n[Install]\nWantedBy=multi-user.target\n" (shquote ` + cmd + `))}}
  }]}
}
`
}

func flatcar(p Params) (string, map[string]string, error) {
	cmd := "flatcar.first_boot=1 ignition.config.url={{.files_url}}ignition.json" + args(p)
	install := `(printf "flatcar-install -d %s && ` + curlPost + ` -d reporter=flatcar-install %s || ` + curlPost + ` -d reporter=flatcar-install -d reason=flatcar-install-failed %s" (or .vars.disk "/dev/sda") .installed_url .failed_url)`
	files := map[string]string{"ignition.json": ignitionUnit("pxe-pilot-install.service", "PXE Pilot: install Flatcar to disk", install)}
	return cmd, files, nil
}

func fcos(p Params) (string, map[string]string, error) {
	if err := need("rootfs", p.Rootfs, "the live rootfs image URL for coreos.live.rootfs_url="); err != nil {
		return "", nil, err
	}
	cmd := "coreos.live.rootfs_url=" + p.Rootfs + ` coreos.inst.install_dev={{or .vars.disk "/dev/sda"}} coreos.inst.ignition_url={{.files_url}}ignition.json ignition.firstboot ignition.platform.id=metal` + args(p)
	report := `(printf "` + curlPost + ` -d reporter=fedora-coreos %s" .installed_url)`
	files := map[string]string{"ignition.json": ignitionUnit("pxe-pilot-installed.service", "PXE Pilot: report the install", report)}
	return cmd, files, nil
}

func plain(p Params) (string, map[string]string, error) {
	return strings.TrimPrefix(args(p), " "), nil, nil
}
