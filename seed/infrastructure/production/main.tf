# infrastructure/production/main.tf
terraform {
  required_version = ">= 1.0"
  backend "s3" {
    bucket = "i2s-terraform-state"
    key    = "production/terraform.tfstate"
    region = "us-east-1"
  }
}

# Multi-AZ Production Setup
module "vpc" {
  source = "terraform-aws-modules/vpc/aws"
  
  name = "i2s-production-vpc"
  cidr = "10.0.0.0/16"
  
  azs             = ["us-east-1a", "us-east-1b", "us-east-1c", "us-east-1d"]
  private_subnets = ["10.0.1.0/24", "10.0.2.0/24", "10.0.3.0/24", "10.0.4.0/24"]
  public_subnets  = ["10.0.101.0/24", "10.0.102.0/24", "10.0.103.0/24", "10.0.104.0/24"]
  database_subnets = ["10.0.201.0/24", "10.0.202.0/24", "10.0.203.0/24", "10.0.204.0/24"]
  
  enable_nat_gateway = true
  single_nat_gateway = false  # Multi-AZ NAT gateways for HA
  enable_vpn_gateway = false
  enable_dns_hostnames = true
  enable_dns_support = true
  
  tags = local.common_tags
}

# Production EKS with Multiple Node Groups
module "eks" {
  source = "terraform-aws-modules/eks/aws"
  
  cluster_name    = "i2s-production-cluster"
  cluster_version = "1.28"
  
  vpc_id                         = module.vpc.vpc_id
  subnet_ids                     = module.vpc.private_subnets
  cluster_endpoint_private_access = true
  cluster_endpoint_public_access  = true
  cluster_endpoint_public_access_cidrs = ["0.0.0.0/0"]
  
  # OIDC Identity provider
  enable_irsa = true
  
  # Managed Node Groups
  eks_managed_node_groups = {
    # Critical agents (always available)
    critical_agents = {
      min_size       = 3
      max_size       = 15
      desired_size   = 5
      instance_types = ["m5.xlarge"]
      capacity_type  = "ON_DEMAND"
      
      k8s_labels = {
        Environment = "production"
        NodeGroup   = "critical-agents"
        Tier        = "critical"
      }
      
      taints = [
        {
          key    = "i2s.studio/tier"
          value  = "critical"
          effect = "NO_SCHEDULE"
        }
      ]
    }
    
    # Standard agents (scalable)
    standard_agents = {
      min_size       = 2
      max_size       = 20
      desired_size   = 4
      instance_types = ["m5.large", "m5.xlarge"]
      capacity_type  = "MIXED"  # Mix of On-Demand and Spot
      
      k8s_labels = {
        Environment = "production"
        NodeGroup   = "standard-agents"
        Tier        = "standard"
      }
    }
    
    # Infrastructure services
    infrastructure = {
      min_size       = 2
      max_size       = 6
      desired_size   = 3
      instance_types = ["c5.large"]
      capacity_type  = "ON_DEMAND"
      
      k8s_labels = {
        Environment = "production"
        NodeGroup   = "infrastructure"
        Tier        = "infrastructure"
      }
    }
  }
  
  tags = local.common_tags
}

# Production RDS with Multi-AZ
module "rds" {
  source = "terraform-aws-modules/rds/aws"
  
  identifier = "i2s-production-db"
  
  engine            = "postgres"
  engine_version    = "15.4"
  instance_class    = "db.r5.xlarge"  # Memory optimized
  allocated_storage = 500
  max_allocated_storage = 1000
  storage_type      = "gp3"
  storage_encrypted = true
  
  db_name  = "i2s_production"
  username = "postgres"
  port     = "5432"
  
  multi_az = true  # High availability
  vpc_security_group_ids = [aws_security_group.rds.id]
  db_subnet_group_name   = aws_db_subnet_group.main.name
  
  backup_retention_period = 30  # Extended backup retention
  backup_window          = "03:00-04:00"
  maintenance_window     = "sun:04:00-sun:05:00"
  
  deletion_protection = true
  skip_final_snapshot = false
  final_snapshot_identifier = "i2s-production-final-snapshot"
  
  performance_insights_enabled = true
  performance_insights_retention_period = 7
  monitoring_interval = 60
  monitoring_role_arn = aws_iam_role.rds_enhanced_monitoring.arn
  
  # Read replica for analytics/reporting
  create_db_parameter_group = true
  parameter_group_name     = "i2s-production-postgres15"
  
  tags = local.common_tags
}

# ElastiCache Redis Cluster
module "elasticache" {
  source = "terraform-aws-modules/elasticache/aws"
  
  replication_group_id       = "i2s-production-redis"
  engine                    = "redis"
  node_type                 = "cache.r5.large"
  port                      = 6379
  parameter_group_name      = "default.redis7.cluster.on"
  
  num_cache_clusters        = 3
  automatic_failover_enabled = true
  multi_az_enabled          = true
  
  subnet_group_name = aws_elasticache_subnet_group.main.name
  security_group_ids = [aws_security_group.elasticache.id]
  
  at_rest_encryption_enabled = true
  transit_encryption_enabled = true
  auth_token                = random_password.redis_auth_token.result
  
  tags = local.common_tags
}
