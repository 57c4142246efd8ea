# Prerequisites installation
brew install docker kubectl helm terraform

# Start local development environment
docker-compose -f docker/dev-stack.yml up -d

# Initialize local Kubernetes cluster
kind create cluster --config k8s/dev-cluster-config.yml

# Deploy I2S development stack
kubectl apply -f k8s/dev/
