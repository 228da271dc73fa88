// manifestcheck decodes every Kubernetes manifest of migrate-init's examples
// (k8s/) strictly into the Kubernetes API types and checks what the
// examples promise: the hardened securityContext of every container, small
// requests and limits, the URL from a Secret, POD_NAME from the downward
// API, and a Job podFailurePolicy whose FailJob exit codes are exactly the
// codes that migrate-init's exit-code table marks "retry can help: no".
//
//	go run . -dir ../../../k8s -exitcode-h ../../../src/exitcode.h \
//	         -exitcode-c ../../../src/exitcode.c [-help FILE]
//
// -help is the output of `migrate-init -help` (the binary's own table); when
// given it must agree with src/exitcode.c row for row.
//
// Strict means: YAML with duplicate keys is an error (YAMLToJSONStrict), and
// so is any field the API type does not have, matched case-sensitively as
// the API server matches it (sigs.k8s.io/json, as apimachinery decodes).
// kustomization.yaml is decoded strictly into kustomize's own type, built
// in-process with krusty (as `kubectl kustomize` does), and the rendered
// objects are decoded and checked again.
//
// Output: one line per check ("ok ..." or "FAIL ..."), then a summary.
// Exit status: 0 all checks passed, 1 some failed, 2 usage error.
package main

import (
	"flag"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/kustomize/api/krusty"
	ktypes "sigs.k8s.io/kustomize/api/types"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// What the examples must satisfy.
const (
	nonrootUID        = 65532
	migrateImageName  = "migrate-init" // the image repository in the raw manifests
	maxMigrateMemory  = "128Mi"        // "small" limits for the migrate-init container
	maxMigrateCPU     = "1"
	kustomizationFile = "kustomization.yaml"
)

// ---------------------------------------------------------------------------
// Reporting

type report struct {
	ok, failed int
}

func (r *report) check(cond bool, what string, whyFmt string, args ...any) bool {
	if cond {
		r.ok++
		fmt.Printf("ok   %s\n", what)
	} else {
		r.failed++
		why := strings.Join(strings.Fields(fmt.Sprintf(whyFmt, args...)), " ") // one line
		fmt.Printf("FAIL %s: %s\n", what, why)
	}
	return cond
}

func (r *report) fail(what string, whyFmt string, args ...any) {
	r.check(false, what, whyFmt, args...)
}

// ---------------------------------------------------------------------------
// The exit-code contract

type exitRow struct {
	code    string // "3" or "128+n"
	retry   string // "-", "yes", "no", "maybe"
	meaning string
}

var (
	enumRe  = regexp.MustCompile(`(?m)^\s*(EXIT_[A-Z_]+)\s*=\s*(\d+)\s*,`)
	tableRe = regexp.MustCompile(`\{\s*(EXIT_[A-Z_]+)\s*,\s*"([^"]*)"\s*,\s*"([^"]*)"\s*\}`)
	helpRe  = regexp.MustCompile(`^\s+(\d+|128\+n)\s+(-|yes|no|maybe)\s+(.+?)\s*$`)
)

// parseHeader: EXIT_NAME -> code, from the enum in src/exitcode.h.
func parseHeader(text string) map[string]int {
	m := map[string]int{}
	for _, g := range enumRe.FindAllStringSubmatch(text, -1) {
		n, _ := strconv.Atoi(g[2])
		m[g[1]] = n
	}
	return m
}

// parseTable: the rows of src/exitcode.c's table, codes resolved through the header.
func parseTable(text string, enum map[string]int) ([]exitRow, error) {
	var rows []exitRow
	for _, g := range tableRe.FindAllStringSubmatch(text, -1) {
		code, ok := enum[g[1]]
		if !ok {
			return nil, fmt.Errorf("%s in the table is not in the header's enum", g[1])
		}
		rows = append(rows, exitRow{strconv.Itoa(code), g[3], g[2]})
	}
	return rows, nil
}

// parseHelp: the "Exit codes:" table of `migrate-init -help`.
func parseHelp(text string) []exitRow {
	var rows []exitRow
	in := false
	for _, line := range strings.Split(text, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "Exit codes:") {
			in = true
			continue
		}
		if !in {
			continue
		}
		if g := helpRe.FindStringSubmatch(line); g != nil {
			rows = append(rows, exitRow{g[1], g[2], g[3]})
		} else if strings.TrimSpace(line) == "" && len(rows) > 0 {
			break
		}
	}
	return rows
}

// ---------------------------------------------------------------------------
// Strict decoding

type object struct {
	file string
	kind string
	name string
	obj  any
}

func (o object) String() string { return fmt.Sprintf("%s %s/%s", o.file, o.kind, o.name) }

func newTyped(apiVersion, kind string) any {
	switch apiVersion + "/" + kind {
	case "v1/Secret":
		return &corev1.Secret{}
	case "v1/ConfigMap":
		return &corev1.ConfigMap{}
	case "v1/ServiceAccount":
		return &corev1.ServiceAccount{}
	case "apps/v1/Deployment":
		return &appsv1.Deployment{}
	case "batch/v1/Job":
		return &batchv1.Job{}
	case "batch/v1/CronJob":
		return &batchv1.CronJob{}
	}
	return nil
}

var docSep = regexp.MustCompile(`(?m)^---[ \t]*$`)

// splitDocs splits a YAML stream; documents with nothing but comments are dropped.
func splitDocs(data []byte) [][]byte {
	var docs [][]byte
	for _, d := range docSep.Split(string(data), -1) {
		empty := true
		for _, l := range strings.Split(d, "\n") {
			t := strings.TrimSpace(l)
			if t != "" && !strings.HasPrefix(t, "#") {
				empty = false
				break
			}
		}
		if !empty {
			docs = append(docs, []byte(d))
		}
	}
	return docs
}

// decodeStrict: YAML -> JSON (duplicate keys are errors) -> the API type for
// its apiVersion/kind, with unknown and duplicate fields as errors and field
// names matched case-sensitively.
func decodeStrict(file string, doc []byte) (object, error) {
	j, err := yaml.YAMLToJSONStrict(doc)
	if err != nil {
		return object{}, fmt.Errorf("YAML: %v", err)
	}
	var tm metav1.TypeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(j, &tm); err != nil {
		return object{}, fmt.Errorf("apiVersion/kind: %v", err)
	}
	typed := newTyped(tm.APIVersion, tm.Kind)
	if typed == nil {
		return object{}, fmt.Errorf("apiVersion %q kind %q is not a type this checker knows", tm.APIVersion, tm.Kind)
	}
	strictErrs, err := kjson.UnmarshalStrict(j, typed, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
	if err != nil {
		return object{}, fmt.Errorf("decoding %s: %v", tm.Kind, err)
	}
	if len(strictErrs) > 0 {
		msgs := make([]string, len(strictErrs))
		for i, e := range strictErrs {
			msgs[i] = e.Error()
		}
		return object{}, fmt.Errorf("strict decoding %s: %s", tm.Kind, strings.Join(msgs, "; "))
	}
	name := ""
	if m, ok := typed.(metav1.Object); ok {
		name = m.GetName()
	}
	return object{file: file, kind: tm.Kind, name: name, obj: typed}, nil
}

// ---------------------------------------------------------------------------
// Pod-level checks

// isMigrateInit: the container runs migrate-init (its image repository is
// migrate-init, or the name kustomize rewrote it to).
func isMigrateInit(c corev1.Container, images []string) bool {
	repo := c.Image
	if i := strings.LastIndex(repo, "@"); i >= 0 {
		repo = repo[:i]
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i]
	}
	return slices.Contains(images, repo)
}

func boolIs(p *bool, want bool) bool { return p != nil && *p == want }

func effBool(c, pod *bool) *bool {
	if c != nil {
		return c
	}
	return pod
}

func effInt(c, pod *int64) *int64 {
	if c != nil {
		return c
	}
	return pod
}

func show[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

type podCtx struct {
	where   string // "deployment.yaml Deployment/orders-api"
	spec    corev1.PodSpec
	secrets map[string]*corev1.Secret
	images  []string // image repositories that are migrate-init
}

// checkContainer: the hardened securityContext and resources every
// container of the examples has; more for migrate-init.
func checkContainer(r *report, p podCtx, c corev1.Container, init bool) {
	kind := "container"
	if init {
		kind = "initContainer"
	}
	w := fmt.Sprintf("%s %s %q", p.where, kind, c.Name)
	mi := isMigrateInit(c, p.images)
	sc := c.SecurityContext
	if !r.check(sc != nil, w+" has a securityContext", "none") {
		return
	}
	psc := p.spec.SecurityContext
	if psc == nil {
		psc = &corev1.PodSecurityContext{}
	}
	nonRoot := effBool(sc.RunAsNonRoot, psc.RunAsNonRoot)
	r.check(boolIs(nonRoot, true), w+" runAsNonRoot: true", "effective value %s", show(nonRoot))
	uid := effInt(sc.RunAsUser, psc.RunAsUser)
	if mi {
		r.check(uid != nil && *uid == nonrootUID, fmt.Sprintf("%s runAsUser: %d", w, nonrootUID), "effective value %s", show(uid))
		r.check(sc.RunAsUser != nil && *sc.RunAsUser == nonrootUID, fmt.Sprintf("%s sets runAsUser: %d itself", w, nonrootUID), "container value %s", show(sc.RunAsUser))
	} else {
		r.check(uid != nil && *uid != 0, w+" runs as a non-zero uid", "effective runAsUser %s", show(uid))
	}
	r.check(boolIs(sc.ReadOnlyRootFilesystem, true), w+" readOnlyRootFilesystem: true", "%s", show(sc.ReadOnlyRootFilesystem))
	r.check(boolIs(sc.AllowPrivilegeEscalation, false), w+" allowPrivilegeEscalation: false", "%s", show(sc.AllowPrivilegeEscalation))
	r.check(sc.Privileged == nil || !*sc.Privileged, w+" is not privileged", "privileged: true")
	caps := sc.Capabilities
	r.check(caps != nil && len(caps.Drop) == 1 && caps.Drop[0] == "ALL" && len(caps.Add) == 0,
		w+" capabilities: drop [ALL], add none", "%+v", caps)
	seccomp := sc.SeccompProfile
	if seccomp == nil {
		seccomp = psc.SeccompProfile
	}
	r.check(seccomp != nil && seccomp.Type == corev1.SeccompProfileTypeRuntimeDefault,
		w+" seccompProfile: RuntimeDefault", "%+v", seccomp)
	if mi {
		r.check(sc.SeccompProfile != nil && sc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault,
			w+" sets seccompProfile RuntimeDefault itself", "%+v", sc.SeccompProfile)
		r.check(boolIs(sc.RunAsNonRoot, true), w+" sets runAsNonRoot itself", "%s", show(sc.RunAsNonRoot))
	}
	r.check(c.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError,
		w+" terminationMessagePolicy: FallbackToLogsOnError", "%q", c.TerminationMessagePolicy)

	// Requests and limits for CPU and memory, requests <= limits.
	for _, res := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, hasReq := c.Resources.Requests[res]
		lim, hasLim := c.Resources.Limits[res]
		r.check(hasReq && hasLim && req.Cmp(lim) <= 0 && req.Sign() > 0,
			fmt.Sprintf("%s %s request and limit set, 0 < request <= limit", w, res),
			"request %s (set: %v), limit %s (set: %v)", req.String(), hasReq, lim.String(), hasLim)
	}
	if mi {
		maxMem, maxCPU := resource.MustParse(maxMigrateMemory), resource.MustParse(maxMigrateCPU)
		lm, lc := c.Resources.Limits[corev1.ResourceMemory], c.Resources.Limits[corev1.ResourceCPU]
		r.check(lm.Cmp(maxMem) <= 0 && lc.Cmp(maxCPU) <= 0,
			fmt.Sprintf("%s limits are small (memory <= %s, cpu <= %s)", w, maxMigrateMemory, maxMigrateCPU),
			"memory %s, cpu %s", lm.String(), lc.String())
		checkMigrateEnv(r, p, c, w)
	}
	// No literal database URL anywhere in any container's environment.
	for _, e := range c.Env {
		r.check(!strings.Contains(e.Value, "mongodb://") && !strings.Contains(e.Value, "mongodb+srv://"),
			fmt.Sprintf("%s env %s holds no literal URL", w, e.Name), "value %q", e.Value)
	}
}

// checkMigrateEnv: DATABASE_URL from a Secret, or DATABASE_URL_FILE in a
// mounted Secret volume (exactly one of them); POD_NAME from the downward API.
func checkMigrateEnv(r *report, p podCtx, c corev1.Container, w string) {
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		if _, dup := env[e.Name]; dup {
			r.fail(w+" env names unique", "%s twice", e.Name)
		}
		env[e.Name] = e
	}
	pod, ok := env["POD_NAME"]
	r.check(ok && pod.Value == "" && pod.ValueFrom != nil && pod.ValueFrom.FieldRef != nil &&
		pod.ValueFrom.FieldRef.FieldPath == "metadata.name",
		w+" POD_NAME from the downward API (fieldRef metadata.name)", "%+v", pod)

	u, hasURL := env["DATABASE_URL"]
	f, hasFile := env["DATABASE_URL_FILE"]
	if !r.check(hasURL != hasFile, w+" sets exactly one of DATABASE_URL and DATABASE_URL_FILE",
		"DATABASE_URL set: %v, DATABASE_URL_FILE set: %v", hasURL, hasFile) {
		return
	}
	if hasURL {
		ref := (*corev1.SecretKeySelector)(nil)
		if u.ValueFrom != nil {
			ref = u.ValueFrom.SecretKeyRef
		}
		if r.check(u.Value == "" && ref != nil, w+" DATABASE_URL comes from a Secret (secretKeyRef)", "%+v", u) {
			checkSecretKey(r, p, w+" DATABASE_URL", ref.Name, ref.Key)
		}
		return
	}
	// DATABASE_URL_FILE: a literal path inside a read-only mount of a Secret volume.
	if !r.check(f.ValueFrom == nil && strings.HasPrefix(f.Value, "/"), w+" DATABASE_URL_FILE is an absolute path", "%+v", f) {
		return
	}
	var found bool
	for _, m := range c.VolumeMounts {
		dir := strings.TrimSuffix(m.MountPath, "/") + "/"
		if !strings.HasPrefix(f.Value, dir) {
			continue
		}
		found = true
		r.check(m.ReadOnly, w+" the Secret volume is mounted readOnly", "mount %q", m.MountPath)
		rel := strings.TrimPrefix(f.Value, dir)
		if m.SubPath != "" {
			r.fail(w+" DATABASE_URL_FILE mount", "subPath mounts do not receive Secret updates; mount the volume")
		}
		var vol *corev1.Volume
		for i := range p.spec.Volumes {
			if p.spec.Volumes[i].Name == m.Name {
				vol = &p.spec.Volumes[i]
			}
		}
		if !r.check(vol != nil && vol.Secret != nil, w+" DATABASE_URL_FILE lies in a Secret volume", "volume %q", m.Name) {
			return
		}
		key := rel
		if len(vol.Secret.Items) > 0 {
			key = ""
			for _, it := range vol.Secret.Items {
				if it.Path == rel {
					key = it.Key
				}
			}
			if !r.check(key != "", w+" DATABASE_URL_FILE names an item of the Secret volume", "no item with path %q", rel) {
				return
			}
		}
		checkSecretKey(r, p, w+" DATABASE_URL_FILE", vol.Secret.SecretName, key)
		mode := vol.Secret.DefaultMode
		if mode != nil && *mode&0o004 == 0 { // not world-readable: the group must be ours
			fsg := p.spec.SecurityContext
			r.check(fsg != nil && fsg.FSGroup != nil && *fsg.FSGroup == nonrootUID && *mode&0o040 != 0,
				w+" the Secret file is readable by uid 65532 (fsGroup 65532 and group-readable mode)",
				"defaultMode %#o, fsGroup %s", *mode, show(fsg.FSGroup))
		}
	}
	r.check(found, w+" DATABASE_URL_FILE lies under a volumeMount", "no mount contains %q", f.Value)
}

func checkSecretKey(r *report, p podCtx, w, name, key string) {
	s, ok := p.secrets[name]
	if !r.check(ok, fmt.Sprintf("%s: Secret %q is among the manifests", w, name), "not found") {
		return
	}
	_, inData := s.Data[key]
	_, inString := s.StringData[key]
	r.check(inData || inString, fmt.Sprintf("%s: Secret %q has key %q", w, name, key), "missing")
}

// checkPod: container names unique, mounts refer to volumes, and each container.
func checkPod(r *report, p podCtx) (migrateContainers []string) {
	names := map[string]bool{}
	vols := map[string]bool{}
	for _, v := range p.spec.Volumes {
		vols[v.Name] = true
	}
	all := append(append([]corev1.Container{}, p.spec.InitContainers...), p.spec.Containers...)
	for i, c := range all {
		r.check(!names[c.Name], fmt.Sprintf("%s container name %q unique", p.where, c.Name), "duplicate")
		names[c.Name] = true
		for _, m := range c.VolumeMounts {
			r.check(vols[m.Name], fmt.Sprintf("%s %q mount %q refers to a volume", p.where, c.Name, m.Name), "no such volume")
		}
		checkContainer(r, p, c, i < len(p.spec.InitContainers))
		if isMigrateInit(c, p.images) {
			migrateContainers = append(migrateContainers, c.Name)
		}
	}
	return migrateContainers
}

// ---------------------------------------------------------------------------
// The Job's podFailurePolicy

func intsOf(v []int32) []int {
	out := make([]int, len(v))
	for i, x := range v {
		out[i] = int(x)
	}
	return out
}

func checkJob(r *report, o object, j *batchv1.Job, p podCtx, noRetry, retryable []int) {
	w := o.String()
	migrate := checkPod(r, p)
	r.check(len(migrate) == 1 && len(p.spec.InitContainers) == 0,
		w+" runs migrate-init as its one container", "migrate-init containers %v, initContainers %d", migrate, len(p.spec.InitContainers))
	r.check(j.Spec.BackoffLimit != nil && *j.Spec.BackoffLimit >= 1 && *j.Spec.BackoffLimit <= 10,
		w+" backoffLimit set (1..10)", "%s", show(j.Spec.BackoffLimit))
	r.check(j.Spec.ActiveDeadlineSeconds != nil, w+" activeDeadlineSeconds set", "unset")
	pfp := j.Spec.PodFailurePolicy
	if !r.check(pfp != nil && len(pfp.Rules) > 0, w+" has a podFailurePolicy", "none") {
		return
	}
	r.check(p.spec.RestartPolicy == corev1.RestartPolicyNever, w+" restartPolicy Never (required by podFailurePolicy)", "%q", p.spec.RestartPolicy)
	r.check(j.Spec.PodReplacementPolicy == nil || *j.Spec.PodReplacementPolicy == batchv1.Failed,
		w+" podReplacementPolicy Failed or unset (required with podFailurePolicy)", "%s", show(j.Spec.PodReplacementPolicy))
	r.check(len(pfp.Rules) <= 20, w+" at most 20 podFailurePolicy rules", "%d", len(pfp.Rules))

	containers := map[string]bool{}
	for _, c := range append(append([]corev1.Container{}, p.spec.InitContainers...), p.spec.Containers...) {
		containers[c.Name] = true
	}
	failJob := map[int]bool{}
	decided := map[int]batchv1.PodFailurePolicyAction{} // first rule wins, as in the controller
	var ignoresDisruption bool
	for i, rule := range pfp.Rules {
		rw := fmt.Sprintf("%s podFailurePolicy rule %d (%s)", w, i, rule.Action)
		r.check(slices.Contains([]batchv1.PodFailurePolicyAction{batchv1.PodFailurePolicyActionFailJob,
			batchv1.PodFailurePolicyActionIgnore, batchv1.PodFailurePolicyActionCount}, rule.Action),
			rw+" action is FailJob, Ignore or Count", "%q (FailIndex needs backoffLimitPerIndex)", rule.Action)
		if !r.check((rule.OnExitCodes == nil) != (len(rule.OnPodConditions) == 0),
			rw+" has exactly one of onExitCodes and onPodConditions", "both or neither") {
			continue
		}
		if rule.OnExitCodes == nil {
			for _, pc := range rule.OnPodConditions {
				st := pc.Status
				if st == "" {
					st = corev1.ConditionTrue
				}
				r.check(slices.Contains([]corev1.ConditionStatus{corev1.ConditionTrue, corev1.ConditionFalse, corev1.ConditionUnknown}, st),
					rw+" condition status valid", "%q", pc.Status)
				if pc.Type == corev1.DisruptionTarget && st == corev1.ConditionTrue && rule.Action == batchv1.PodFailurePolicyActionIgnore {
					ignoresDisruption = true
				}
			}
			continue
		}
		req := rule.OnExitCodes
		vals := intsOf(req.Values)
		r.check(req.ContainerName != nil && *req.ContainerName != "" && containers[*req.ContainerName] && slices.Contains(migrate, *req.ContainerName),
			rw+" onExitCodes.containerName names the migrate-init container", "%s (migrate-init: %v)", show(req.ContainerName), migrate)
		r.check(req.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn,
			rw+" operator In (NotIn would also catch codes added to the table later)", "%q", req.Operator)
		r.check(len(vals) >= 1 && len(vals) <= 255, rw+" 1..255 values", "%d", len(vals))
		r.check(sort.IntsAreSorted(vals) && len(slices.Compact(slices.Clone(vals))) == len(vals),
			rw+" values sorted ascending, no duplicates (API validation)", "%v", vals)
		r.check(!slices.Contains(vals, 0), rw+" no 0 with operator In (API validation)", "%v", vals)
		r.check(rule.Action != batchv1.PodFailurePolicyActionIgnore,
			rw+" no Ignore on exit codes (it would retry without bound)", "codes %v", vals)
		for _, v := range vals {
			if _, seen := decided[v]; !seen && req.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn {
				decided[v] = rule.Action
			}
		}
	}
	for code, action := range decided {
		if action == batchv1.PodFailurePolicyActionFailJob {
			failJob[code] = true
		}
	}
	got := make([]int, 0, len(failJob))
	for c := range failJob {
		got = append(got, c)
	}
	sort.Ints(got)
	r.check(slices.Equal(got, noRetry), fmt.Sprintf("%s FailJob exactly on the \"retry: no\" exit codes %v", w, noRetry), "FailJob on %v", got)
	var wrong []int
	for _, c := range retryable {
		if a, ok := decided[c]; ok && a != batchv1.PodFailurePolicyActionCount {
			wrong = append(wrong, c)
		}
	}
	r.check(len(wrong) == 0, fmt.Sprintf("%s retryable exit codes %v are counted (retried up to backoffLimit)", w, retryable), "not Count: %v", wrong)
	r.check(ignoresDisruption, w+" Ignore on condition DisruptionTarget (evictions do not count)", "no such rule")
}

// ---------------------------------------------------------------------------
// Objects

func selectorMatches(r *report, w string, sel *metav1.LabelSelector, tmplLabels map[string]string) {
	s, err := metav1.LabelSelectorAsSelector(sel)
	r.check(err == nil && sel != nil && !s.Empty() && s.Matches(labels.Set(tmplLabels)),
		w+" selector matches the pod template's labels", "selector %v, labels %v, err %v", sel, tmplLabels, err)
}

func checkObjects(r *report, objs []object, images []string, noRetry, retryable []int) {
	secrets := map[string]*corev1.Secret{}
	for _, o := range objs {
		if s, ok := o.obj.(*corev1.Secret); ok {
			secrets[s.Name] = s
		}
	}
	var sawDeployMigrate, sawJob bool
	for _, o := range objs {
		w := o.String()
		r.check(o.name != "", w+" has metadata.name", "empty")
		switch t := o.obj.(type) {
		case *corev1.Secret:
			checkSecret(r, w, t)
		case *appsv1.Deployment:
			selectorMatches(r, w, t.Spec.Selector, t.Spec.Template.Labels)
			p := podCtx{where: w, spec: t.Spec.Template.Spec, secrets: secrets, images: images}
			migrate := checkPod(r, p)
			var inInit []string
			for _, c := range t.Spec.Template.Spec.InitContainers {
				if isMigrateInit(c, images) {
					inInit = append(inInit, c.Name)
				}
			}
			r.check(len(migrate) == 1 && len(inInit) == 1, w+" runs migrate-init in one initContainer (and not as the app)",
				"migrate-init containers %v, of them initContainers %v", migrate, inInit)
			r.check(t.Spec.Template.Spec.RestartPolicy == "" || t.Spec.Template.Spec.RestartPolicy == corev1.RestartPolicyAlways,
				w+" restartPolicy Always (a Deployment's only one)", "%q", t.Spec.Template.Spec.RestartPolicy)
			sawDeployMigrate = sawDeployMigrate || len(inInit) == 1
		case *batchv1.Job:
			selectorOK := t.Spec.Selector == nil || (t.Spec.ManualSelector != nil && *t.Spec.ManualSelector)
			r.check(selectorOK, w+" leaves the selector to the Job controller", "selector set without manualSelector")
			checkJob(r, o, t, podCtx{where: w, spec: t.Spec.Template.Spec, secrets: secrets, images: images}, noRetry, retryable)
			sawJob = true
		case *batchv1.CronJob:
			j := &batchv1.Job{Spec: t.Spec.JobTemplate.Spec}
			checkJob(r, o, j, podCtx{where: w, spec: t.Spec.JobTemplate.Spec.Template.Spec, secrets: secrets, images: images}, noRetry, retryable)
		}
	}
	r.check(sawDeployMigrate, "a Deployment with a migrate-init initContainer", "none among the manifests")
	r.check(sawJob, "a Job running migrate-init", "none among the manifests")
}

var fakeRe = regexp.MustCompile(`(?i)fake|change-?me|example|not-?a-?real|placeholder`)

func checkSecret(r *report, w string, s *corev1.Secret) {
	raw := map[string]string{}
	for k, v := range s.Data {
		raw[k] = string(v)
	}
	for k, v := range s.StringData {
		raw[k] = v
	}
	for k, v := range raw {
		if !strings.Contains(v, "://") {
			continue
		}
		u, err := url.Parse(v)
		if !r.check(err == nil && (u.Scheme == "mongodb" || u.Scheme == "mongodb+srv"), fmt.Sprintf("%s %s is a mongodb:// URL", w, k), "%v", err) {
			continue
		}
		pw, has := u.User.Password()
		r.check(has && fakeRe.MatchString(pw), fmt.Sprintf("%s %s has an obviously fake password", w, k), "password %q does not say fake/change-me/example", pw)
		r.check(strings.Trim(u.Path, "/") != "", fmt.Sprintf("%s %s names a database", w, k), "no path")
	}
}

// ---------------------------------------------------------------------------

func loadDir(r *report, dir string) (objs []object, files []string) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		fmt.Fprintln(os.Stderr, "manifestcheck:", err)
		os.Exit(2)
	}
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) || n == kustomizationFile {
			continue
		}
		files = append(files, n)
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			r.fail(n+" readable", "%v", err)
			continue
		}
		for i, doc := range splitDocs(data) {
			o, err := decodeStrict(n, doc)
			if r.check(err == nil, fmt.Sprintf("%s document %d decodes strictly into the API types", n, i+1), "%v", err) {
				objs = append(objs, o)
			}
		}
	}
	return objs, files
}

// checkKustomization: kustomization.yaml decodes strictly into kustomize's
// type, lists every manifest, builds (krusty), and the rendered objects
// decode strictly and pass the same checks, with the image rewritten.
func checkKustomization(r *report, dir string, files []string, noRetry, retryable []int) {
	path := filepath.Join(dir, kustomizationFile)
	data, err := os.ReadFile(path)
	if !r.check(err == nil, kustomizationFile+" exists", "%v", err) {
		return
	}
	var k ktypes.Kustomization
	j, err := yaml.YAMLToJSONStrict(data)
	if err == nil {
		var strictErrs []error
		strictErrs, err = kjson.UnmarshalStrict(j, &k, kjson.DisallowDuplicateFields, kjson.DisallowUnknownFields)
		if err == nil && len(strictErrs) > 0 {
			err = fmt.Errorf("%v", strictErrs)
		}
	}
	if !r.check(err == nil, kustomizationFile+" decodes strictly into kustomize's Kustomization", "%v", err) {
		return
	}
	r.check(k.Kind == ktypes.KustomizationKind && k.APIVersion == ktypes.KustomizationVersion,
		kustomizationFile+" apiVersion/kind", "%s/%s", k.APIVersion, k.Kind)
	res := slices.Clone(k.Resources)
	sort.Strings(res)
	want := slices.Clone(files)
	sort.Strings(want)
	r.check(slices.Equal(res, want), kustomizationFile+" lists every manifest in the directory as a resource", "resources %v, files %v", res, want)

	kz := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := kz.Run(filesys.MakeFsOnDisk(), dir)
	if !r.check(err == nil, kustomizationFile+" builds (kustomize build)", "%v", err) {
		return
	}
	out, err := m.AsYaml()
	if !r.check(err == nil, "kustomize output renders as YAML", "%v", err) {
		return
	}
	var rendered []object
	for i, doc := range splitDocs(out) {
		o, err := decodeStrict("kustomize", doc)
		if r.check(err == nil, fmt.Sprintf("kustomize output document %d decodes strictly", i+1), "%v", err) {
			rendered = append(rendered, o)
		}
	}
	// The images: transformer must have rewritten every migrate-init image.
	images := []string{migrateImageName}
	for _, im := range k.Images {
		if im.Name == migrateImageName && im.NewName != "" {
			images = []string{im.NewName}
		}
	}
	for _, o := range rendered {
		var spec *corev1.PodSpec
		switch t := o.obj.(type) {
		case *appsv1.Deployment:
			spec = &t.Spec.Template.Spec
		case *batchv1.Job:
			spec = &t.Spec.Template.Spec
		}
		if spec == nil {
			continue
		}
		for _, c := range append(append([]corev1.Container{}, spec.InitContainers...), spec.Containers...) {
			r.check(!strings.HasPrefix(c.Image, migrateImageName+":") && c.Image != migrateImageName,
				fmt.Sprintf("kustomize %s/%s %q image rewritten by images:", o.kind, o.name, c.Name), "still %q", c.Image)
		}
	}
	r.check(len(rendered) > 0, "kustomize output has objects", "none")
	fmt.Println("-- the rendered objects (kustomize build) --")
	checkObjects(r, rendered, images, noRetry, retryable)
}

func main() {
	dir := flag.String("dir", "", "directory of the manifests (k8s/)")
	hdr := flag.String("exitcode-h", "", "src/exitcode.h")
	tbl := flag.String("exitcode-c", "", "src/exitcode.c")
	help := flag.String("help-output", "", "file holding the output of `migrate-init -help` (optional)")
	flag.Parse()
	if *dir == "" || *hdr == "" || *tbl == "" {
		fmt.Fprintln(os.Stderr, "usage: manifestcheck -dir K8S_DIR -exitcode-h exitcode.h -exitcode-c exitcode.c [-help-output FILE]")
		os.Exit(2)
	}
	r := &report{}

	// The exit-code contract.
	h, err1 := os.ReadFile(*hdr)
	c, err2 := os.ReadFile(*tbl)
	if err1 != nil || err2 != nil {
		fmt.Fprintln(os.Stderr, "manifestcheck:", err1, err2)
		os.Exit(2)
	}
	enum := parseHeader(string(h))
	r.check(len(enum) >= 12, fmt.Sprintf("%s: enum exit_code parsed (%d names)", *hdr, len(enum)), "too few")
	rows, err := parseTable(string(c), enum)
	r.check(err == nil && len(rows) >= 12, fmt.Sprintf("%s: exit-code table parsed (%d rows)", *tbl, len(rows)), "%v", err)
	for name, code := range enum {
		if name == "EXIT_SIGNAL_BASE" {
			continue
		}
		found := false
		for _, row := range rows {
			found = found || row.code == strconv.Itoa(code)
		}
		r.check(found, fmt.Sprintf("%s (%d) has a row in the table", name, code), "missing")
	}
	if *help != "" {
		ht, err := os.ReadFile(*help)
		if err != nil {
			fmt.Fprintln(os.Stderr, "manifestcheck:", err)
			os.Exit(2)
		}
		hrows := parseHelp(string(ht))
		var tableOnly []exitRow
		for _, hr := range hrows {
			if hr.code != "128+n" {
				tableOnly = append(tableOnly, hr)
			}
		}
		r.check(slices.Equal(tableOnly, rows), "`migrate-init -help` exit-code table equals src/exitcode.c's",
			"help %v\nsource %v", tableOnly, rows)
		r.check(slices.ContainsFunc(hrows, func(e exitRow) bool { return e.code == "128+n" && e.retry == "yes" }),
			"`migrate-init -help` lists 128+n (signals) as retryable", "%v", hrows)
	}
	var noRetry, retryable []int
	for _, row := range rows {
		n, _ := strconv.Atoi(row.code)
		switch row.retry {
		case "no":
			noRetry = append(noRetry, n)
		case "yes", "maybe":
			retryable = append(retryable, n)
		}
	}
	sort.Ints(noRetry)
	sort.Ints(retryable)
	fmt.Printf("exit codes: retry can help \"no\": %v; \"yes\"/\"maybe\": %v\n", noRetry, retryable)
	r.check(len(noRetry) > 0 && len(retryable) > 0, "exit-code table has both classes", "no %v, retryable %v", noRetry, retryable)

	// The manifests, one by one, then as kustomize renders them.
	objs, files := loadDir(r, *dir)
	r.check(len(objs) > 0, "manifests found in "+*dir, "none")
	checkObjects(r, objs, []string{migrateImageName}, noRetry, retryable)
	checkKustomization(r, *dir, files, noRetry, retryable)

	fmt.Printf("manifestcheck: %d passed, %d failed\n", r.ok, r.failed)
	if r.failed > 0 {
		os.Exit(1)
	}
}
