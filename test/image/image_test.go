package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/x509"
	"debug/elf"
	"encoding/json"
	"errors"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// OCI media types and annotations the test reads.
const (
	mediaTypeIndex    = "application/vnd.oci.image.index.v1+json"
	mediaTypeLayerTar = "application/vnd.oci.image.layer.v1.tar"
	mediaTypeLayerGz  = "application/vnd.oci.image.layer.v1.tar+gzip"
	annotationRefName = "org.opencontainers.image.ref.name"
	labelVersion      = "org.opencontainers.image.version"
	labelStandin      = "io.vaultsync.standin"
)

// Names that must not exist anywhere in the runtime file system.
var forbidden = map[string]string{
	"sh": "shell", "bash": "shell", "dash": "shell", "ash": "shell", "zsh": "shell", "busybox": "shell",
	"apt": "package manager", "apt-get": "package manager", "dpkg": "package manager", "apk": "package manager",
	"rpm": "package manager", "yum": "package manager", "dnf": "package manager", "microdnf": "package manager",
}

type descriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
	Platform    *struct {
		Architecture string `json:"architecture"`
		OS           string `json:"os"`
	} `json:"platform"`
}

type index struct {
	Manifests []descriptor `json:"manifests"`
}

type manifest struct {
	Config descriptor   `json:"config"`
	Layers []descriptor `json:"layers"`
}

type imageConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		User       string            `json:"User"`
		Entrypoint []string          `json:"Entrypoint"`
		Cmd        []string          `json:"Cmd"`
		Labels     map[string]string `json:"Labels"`
	} `json:"config"`
}

// file is one entry of the image's file system after all layers are applied.
type file struct {
	hdr  *tar.Header
	data []byte // regular files only
}

func TestImage(t *testing.T) {
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	archive := envOr("IMAGE_ARCHIVE", filepath.Join(root, "bin", "image", "vaultsync.tar"))
	tag := envOr("IMAGE_TAG", "vaultsync:dev")
	// Only make test-image (VAULTSYNC_REQUIRE_IMAGE=1) checks the archive: it builds it from
	// the tree first. An archive left by an earlier make image, or by make release-dry-run's
	// image of another tag, would fail make test for no fault of the tree.
	if os.Getenv("VAULTSYNC_REQUIRE_IMAGE") != "1" {
		t.Skip("the image is checked by make test-image, which builds it first (VAULTSYNC_REQUIRE_IMAGE=1)")
	}
	if _, err := os.Stat(archive); err != nil {
		t.Fatalf("no image archive at %s (VAULTSYNC_REQUIRE_IMAGE=1): build it with make image", archive)
	}

	blobs := readArchive(t, archive)
	m, cfg := findImage(t, blobs, tag)
	fs := flatten(t, blobs, m)

	t.Run("config", func(t *testing.T) {
		if got := cfg.Config.Entrypoint; len(got) != 1 || got[0] != "/manager" {
			t.Errorf("Entrypoint = %q, want [\"/manager\"]", got)
		}
		if got := cfg.Config.User; got != "65532:65532" {
			t.Errorf("User = %q, want 65532:65532 (nonroot)", got)
		}
		if cfg.OS != "linux" {
			t.Errorf("os = %q, want linux", cfg.OS)
		}
		if _, ok := cfg.Config.Labels[labelStandin]; !ok {
			t.Errorf("label %s missing: an image of make image is built on local stand-in bases and must say so", labelStandin)
		}
	})

	t.Run("no shell or package manager", func(t *testing.T) {
		for name, f := range fs {
			if what, bad := forbidden[path.Base(name)]; bad && f.hdr.Typeflag != tar.TypeDir {
				t.Errorf("/%s: a %s in the runtime image", name, what)
			}
			if strings.HasPrefix(name, "var/lib/apt") || strings.HasPrefix(name, "var/lib/dpkg/info") ||
				strings.HasPrefix(name, "etc/apt") {
				t.Errorf("/%s: package manager state in the runtime image", name)
			}
		}
	})

	t.Run("users", func(t *testing.T) {
		passwd := string(regular(t, fs, "etc/passwd"))
		for _, want := range []string{"root:x:0:0:", "nobody:x:65534:65534:", "nonroot:x:65532:65532:"} {
			if !hasLinePrefix(passwd, want) {
				t.Errorf("/etc/passwd has no line %q...:\n%s", want, passwd)
			}
		}
		group := string(regular(t, fs, "etc/group"))
		for _, want := range []string{"root:x:0:", "nobody:x:65534:", "nonroot:x:65532:"} {
			if !hasLinePrefix(group, want) {
				t.Errorf("/etc/group has no line %q:\n%s", want, group)
			}
		}
		if home, ok := fs["home/nonroot"]; !ok || home.hdr.Typeflag != tar.TypeDir || home.hdr.Uid != 65532 || home.hdr.Gid != 65532 {
			t.Errorf("/home/nonroot must be a directory owned by 65532:65532")
		}
		if tmp, ok := fs["tmp"]; !ok || tmp.hdr.Typeflag != tar.TypeDir || tmp.hdr.FileInfo().Mode()&(os.ModeSticky|os.ModePerm) != os.ModeSticky|0o777 {
			t.Errorf("/tmp must be a directory with mode 1777")
		}
	})

	t.Run("CA bundle", func(t *testing.T) {
		bundle := regular(t, fs, "etc/ssl/certs/ca-certificates.crt")
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(bundle) {
			t.Fatal("/etc/ssl/certs/ca-certificates.crt holds no certificate")
		}
		if n := bytes.Count(bundle, []byte("BEGIN CERTIFICATE")); n < 50 {
			t.Errorf("/etc/ssl/certs/ca-certificates.crt holds %d certificates; Debian's bundle has over 100", n)
		}
		// The builder stand-in trusts this machine's local CAs (e.g. a TLS-inspecting
		// proxy's); none of them may reach the image.
		local, _ := filepath.Glob("/usr/local/share/ca-certificates/*.crt")
		for _, f := range local {
			if pem, err := os.ReadFile(f); err == nil && len(bytes.TrimSpace(pem)) > 0 && bytes.Contains(bundle, bytes.TrimSpace(pem)) {
				t.Errorf("the image's CA bundle contains this machine's local CA %s", f)
			}
		}
	})

	t.Run("time zones", func(t *testing.T) {
		for _, zone := range []string{"UTC", "Europe/Berlin", "America/New_York"} {
			name := "usr/share/zoneinfo/" + zone
			if _, ok := fs[name]; !ok {
				t.Errorf("/%s missing", name)
			}
		}
	})

	t.Run("manager", func(t *testing.T) {
		bin := regular(t, fs, "manager")
		if fs["manager"].hdr.FileInfo().Mode()&0o111 == 0 {
			t.Error("/manager is not executable")
		}
		ef, err := elf.NewFile(bytes.NewReader(bin))
		if err != nil {
			t.Fatalf("/manager is not an ELF binary: %v", err)
		}
		for _, p := range ef.Progs {
			if p.Type == elf.PT_INTERP {
				t.Fatal("/manager has a PT_INTERP header: it is dynamically linked and cannot run on a static base")
			}
		}
		if cfg.Architecture != runtime.GOARCH {
			t.Skipf("the image is %s, this machine %s: not running /manager", cfg.Architecture, runtime.GOARCH)
		}

		dir := t.TempDir()
		fromImage := filepath.Join(dir, "manager-image")
		if err := os.WriteFile(fromImage, bin, 0o755); err != nil {
			t.Fatal(err)
		}
		version := os.Getenv("VERSION")
		if version == "" {
			version = gitVersion(root)
		}
		reference := filepath.Join(dir, "manager-build")
		buildReference(t, root, version, reference)

		got, want := runVersion(t, fromImage), runVersion(t, reference)
		if got != want {
			t.Errorf("/manager --version = %q, make build's manager --version = %q (version %s): rebuild the image with make image", got, want, version)
		}
		if label := cfg.Config.Labels[labelVersion]; label != version {
			t.Errorf("label %s = %q, want %q", labelVersion, label, version)
		}
	})
}

// readArchive returns the archive's files by name (oci-layout, index.json, blobs/sha256/...).
func readArchive(t *testing.T, name string) map[string][]byte {
	t.Helper()
	f, err := os.Open(name)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	files := map[string][]byte{}
	tr := tar.NewReader(f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("%s: not a tar archive: %v", name, err)
		}
		if hdr.Typeflag != tar.TypeReg {
			continue
		}
		data, err := io.ReadAll(tr)
		if err != nil {
			t.Fatal(err)
		}
		files[path.Clean(hdr.Name)] = data
	}
	if _, ok := files["oci-layout"]; !ok {
		t.Fatalf("%s is not an OCI archive (no oci-layout file)", name)
	}
	return files
}

func blob(t *testing.T, blobs map[string][]byte, d descriptor) []byte {
	t.Helper()
	algo, hex, ok := strings.Cut(d.Digest, ":")
	if !ok {
		t.Fatalf("bad digest %q", d.Digest)
	}
	data, ok := blobs["blobs/"+algo+"/"+hex]
	if !ok {
		t.Fatalf("blob %s missing from the archive", d.Digest)
	}
	return data
}

func decode(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := json.Unmarshal(data, v); err != nil {
		t.Fatal(err)
	}
}

// findImage returns the manifest and config of the image the index names tag,
// following a nested index to this machine's platform.
func findImage(t *testing.T, blobs map[string][]byte, tag string) (manifest, imageConfig) {
	t.Helper()
	var idx index
	decode(t, blobs["index.json"], &idx)
	var names []string
	for _, d := range idx.Manifests {
		name := d.Annotations[annotationRefName]
		names = append(names, name)
		if name != tag {
			continue
		}
		if d.MediaType == mediaTypeIndex {
			var nested index
			decode(t, blob(t, blobs, d), &nested)
			d = pickPlatform(t, nested)
		}
		var m manifest
		decode(t, blob(t, blobs, d), &m)
		var cfg imageConfig
		decode(t, blob(t, blobs, m.Config), &cfg)
		return m, cfg
	}
	t.Fatalf("no image named %q in the archive; it names %q", tag, names)
	return manifest{}, imageConfig{}
}

func pickPlatform(t *testing.T, idx index) descriptor {
	t.Helper()
	for _, d := range idx.Manifests {
		if d.Platform != nil && d.Platform.OS == "linux" && d.Platform.Architecture == runtime.GOARCH {
			return d
		}
	}
	t.Fatalf("no linux/%s image in the index", runtime.GOARCH)
	return descriptor{}
}

// flatten applies the image's layers in order, whiteouts included, and
// returns the resulting file system by clean relative path.
func flatten(t *testing.T, blobs map[string][]byte, m manifest) map[string]file {
	t.Helper()
	fs := map[string]file{}
	for _, l := range m.Layers {
		var r io.Reader = bytes.NewReader(blob(t, blobs, l))
		switch l.MediaType {
		case mediaTypeLayerGz:
			gz, err := gzip.NewReader(r)
			if err != nil {
				t.Fatalf("layer %s: %v", l.Digest, err)
			}
			r = gz
		case mediaTypeLayerTar:
		default:
			t.Fatalf("layer %s: media type %q not handled", l.Digest, l.MediaType)
		}
		tr := tar.NewReader(r)
		for {
			hdr, err := tr.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				t.Fatalf("layer %s: %v", l.Digest, err)
			}
			name := strings.TrimPrefix(path.Clean("/"+hdr.Name), "/")
			dir, base := path.Split(name)
			switch {
			case base == ".wh..wh..opq":
				removeUnder(fs, strings.TrimSuffix(dir, "/"), false)
				continue
			case strings.HasPrefix(base, ".wh."):
				removeUnder(fs, dir+strings.TrimPrefix(base, ".wh."), true)
				continue
			}
			f := file{hdr: hdr}
			if hdr.Typeflag == tar.TypeReg {
				if f.data, err = io.ReadAll(tr); err != nil {
					t.Fatal(err)
				}
			}
			fs[name] = f
		}
	}
	return fs
}

// removeUnder deletes dir's contents, and dir itself when self is set.
func removeUnder(fs map[string]file, dir string, self bool) {
	for name := range fs {
		if (self && name == dir) || strings.HasPrefix(name, dir+"/") {
			delete(fs, name)
		}
	}
}

// regular returns the content of a regular file, following symbolic links inside the image.
func regular(t *testing.T, fs map[string]file, name string) []byte {
	t.Helper()
	for range 16 {
		f, ok := fs[name]
		if !ok {
			t.Fatalf("/%s missing from the image", name)
		}
		switch f.hdr.Typeflag {
		case tar.TypeReg:
			return f.data
		case tar.TypeSymlink:
			// A relative link resolves from the link's directory. Cleaned from
			// "/", the target cannot climb above the image's root, as in a
			// container: "/.." is "/".
			target := f.hdr.Linkname
			if !path.IsAbs(target) {
				target = path.Dir("/"+name) + "/" + target
			}
			name = strings.TrimPrefix(path.Clean("/"+target), "/")
		default:
			t.Fatalf("/%s is not a regular file", name)
		}
	}
	t.Fatalf("/%s: too many symbolic links", name)
	return nil
}

func hasLinePrefix(text, prefix string) bool {
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(line, prefix) {
			return true
		}
	}
	return false
}

// buildReference builds the manager as make build does (hack/build-flags.sh with VERSION), into out.
func buildReference(t *testing.T, root, version, out string) {
	t.Helper()
	flags := exec.Command(filepath.Join(root, "hack", "build-flags.sh"))
	flags.Env = append(os.Environ(), "VERSION="+version)
	ldflags, err := flags.CombinedOutput()
	if err != nil {
		t.Fatalf("hack/build-flags.sh: %v\n%s", err, ldflags)
	}
	build := exec.Command("go", "build", "-trimpath", "-ldflags", strings.TrimSpace(string(ldflags)), "-o", out, ".")
	build.Dir = root
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build of the reference manager: %v\n%s", err, b)
	}
}

func runVersion(t *testing.T, bin string) string {
	t.Helper()
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("%s --version: %v\n%s", bin, err, out)
	}
	return strings.TrimSpace(string(out))
}

// gitVersion is the Makefile's VERSION default.
func gitVersion(root string) string {
	cmd := exec.Command("git", "describe", "--tags", "--always", "--dirty")
	cmd.Dir = root
	out, err := cmd.Output()
	if err != nil {
		return "dev"
	}
	return strings.TrimSpace(string(out))
}

func envOr(key, def string) string {
	if v := os.Getenv(key); v != "" {
		return v
	}
	return def
}
