// Asks the real MyCat whether it loads a set of configuration files, many sets per JVM.
//
// Usage: java -cp DIR RealMycatOracle MYCAT_HOME CASE_HOME...
//
// Each CASE_HOME holds conf/ with the files under test. For every case a fresh class loader
// is built from CASE_HOME/conf followed by MyCat's own jar, the order of MyCat's start command
// ("conf:lib/*"), so MyCat's static state (singletons, caches) starts empty and a file the
// case lacks falls back to the copy bundled in the jar, as at a real start. The other jars
// of lib/ (log4j, druid, ...) sit in one parent loader shared by all cases. MYCAT_HOME (the
// system property) points at the case while it loads.
//
// What runs is what MyCat runs at start-up before it opens sockets: io.mycat.config
// .ConfigInitializer(true), which parses the three files with their DTDs, builds the rules
// (partition function classes, their init), the schemas (dataNode and rule checks), the
// dataHost pools and dataNodes, the firewall and cluster, loads the sequence handler the
// system names, and makes its self checks. Nothing connects to a backend.
//
// Output: one line per case, "CASE_HOME<TAB>LOADED" or "CASE_HOME<TAB>REFUSED<TAB>reason",
// the reason being the chain of exception messages on one line.

import java.io.File;
import java.lang.reflect.InvocationTargetException;
import java.net.URL;
import java.net.URLClassLoader;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

public final class RealMycatOracle {
    private static final long CASE_TIMEOUT_SECONDS = 60;

    public static void main(String[] args) throws Exception {
        File home = new File(args[0]);
        File[] jars = new File(home, "lib").listFiles((dir, name) -> name.endsWith(".jar"));
        if (jars == null || jars.length == 0) {
            throw new IllegalArgumentException("no jars in " + home + "/lib");
        }
        Arrays.sort(jars);
        // MyCat's own jar gets a fresh loader per case; the libraries it uses hold no MyCat
        // state and are loaded once (log4j and friends take seconds to start each time).
        List<URL> libraries = new ArrayList<>();
        File mycatJar = null;
        for (File jar : jars) {
            if (jar.getName().startsWith("Mycat-server-")) {
                mycatJar = jar;
            } else {
                libraries.add(jar.toURI().toURL());
            }
        }
        if (mycatJar == null) {
            throw new IllegalArgumentException("no Mycat-server-*.jar in " + home + "/lib");
        }
        ClassLoader shared = new URLClassLoader(libraries.toArray(new URL[0]),
                ClassLoader.getPlatformClassLoader());
        File server = mycatJar;
        ExecutorService pool = Executors.newCachedThreadPool(runnable -> {
            Thread thread = new Thread(runnable);
            thread.setDaemon(true);  // a case that leaves threads behind must not keep us alive
            return thread;
        });
        for (int i = 1; i < args.length; i++) {
            File caseHome = new File(args[i]);
            Future<String> verdict = pool.submit(() -> load(caseHome, server, shared));
            String line;
            try {
                line = verdict.get(CASE_TIMEOUT_SECONDS, TimeUnit.SECONDS);
            } catch (TimeoutException exc) {
                verdict.cancel(true);
                line = "REFUSED\tno verdict within " + CASE_TIMEOUT_SECONDS + " s";
            }
            System.out.println(caseHome.getPath() + "\t" + line);
            System.out.flush();
        }
        System.exit(0);
    }

    private static String load(File caseHome, File server, ClassLoader shared) throws Exception {
        URL[] urls = {new File(caseHome, "conf").toURI().toURL(), server.toURI().toURL()};
        ClassLoader previous = Thread.currentThread().getContextClassLoader();
        // Not closed: log4j may still be formatting one of this case's messages.
        URLClassLoader loader = new URLClassLoader(urls, shared);
        try {
            Thread.currentThread().setContextClassLoader(loader);
            System.setProperty("MYCAT_HOME", caseHome.getAbsolutePath());
            Class<?> initializer = Class.forName("io.mycat.config.ConfigInitializer", true, loader);
            initializer.getConstructor(boolean.class).newInstance(true);
            return "LOADED";
        } catch (InvocationTargetException exc) {
            return "REFUSED\t" + describe(exc.getCause());
        } catch (Throwable exc) {
            return "REFUSED\t" + describe(exc);
        } finally {
            Thread.currentThread().setContextClassLoader(previous);
        }
    }

    private static String describe(Throwable exc) {
        StringBuilder text = new StringBuilder();
        for (Throwable cause = exc; cause != null; cause = cause.getCause()) {
            if (text.length() > 0) {
                text.append(" <- ");
            }
            text.append(cause.getClass().getName()).append(": ").append(cause.getMessage());
            if (cause.getCause() == cause) {
                break;
            }
        }
        return text.toString().replaceAll("[\\r\\n\\t]+", " ");
    }
}
